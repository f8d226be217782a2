/* Stub <zephyr/sys/printk.h> for mamba_tvm.project.zephyr_check (see ../../README.md). */
#ifndef MAMBA_TVM_STUB_ZEPHYR_SYS_PRINTK_H_
#define MAMBA_TVM_STUB_ZEPHYR_SYS_PRINTK_H_

void printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
