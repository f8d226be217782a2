/* Stub <zephyr/drivers/uart.h> for mamba_tvm.project.zephyr_check (see ../../README.md):
 * the polling API only. */
#ifndef MAMBA_TVM_STUB_ZEPHYR_DRIVERS_UART_H_
#define MAMBA_TVM_STUB_ZEPHYR_DRIVERS_UART_H_
#include <zephyr/device.h>

int uart_poll_in(const struct device *dev, unsigned char *p_char);
void uart_poll_out(const struct device *dev, unsigned char out_char);

#endif
