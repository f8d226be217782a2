/* Stub <zephyr/kernel.h> for mamba_tvm.project.zephyr_check (see ../README.md). */
#ifndef MAMBA_TVM_STUB_ZEPHYR_KERNEL_H_
#define MAMBA_TVM_STUB_ZEPHYR_KERNEL_H_
#include <stdint.h>
#include <zephyr/sys/printk.h>

uint32_t k_cycle_get_32(void);
int sys_clock_hw_cycles_per_sec(void);
uint32_t k_cyc_to_us_floor32(uint64_t t);
void k_yield(void);

#endif
