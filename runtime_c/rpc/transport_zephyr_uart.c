/* RPC transport for Zephyr: the polling UART API on the chosen console UART
 * (on nucleo_h743zi, the ST-LINK virtual COM port). Not built here (no Zephyr
 * tree); the generated Zephyr apps add it. Keep console output (printk, logging)
 * off that UART while serving: stray text corrupts frames (the host retries). */
#include <zephyr/device.h>
#include <zephyr/drivers/uart.h>
#include <zephyr/kernel.h>

#include "rpc_transport.h"

static const struct device *const uart_dev = DEVICE_DT_GET(DT_CHOSEN(zephyr_console));

static int zephyr_uart_read(void *ctx, uint8_t *buf, size_t n) {
  size_t got = 0u;
  unsigned char c;
  (void)ctx;
  while (got == 0u && n > 0u) {
    int rc = uart_poll_in(uart_dev, &c);
    if (rc == 0) {
      buf[got++] = c;
    } else if (rc == -1) { /* no character yet */
      k_yield();
    } else {
      return -1; /* -ENOSYS/-EBUSY: this UART cannot be polled */
    }
  }
  while (got < n && uart_poll_in(uart_dev, &c) == 0) buf[got++] = c;
  return (int)got;
}

static int zephyr_uart_write(void *ctx, const uint8_t *buf, size_t n) {
  size_t i;
  (void)ctx;
  for (i = 0u; i < n; i++) uart_poll_out(uart_dev, buf[i]);
  return (int)n;
}

int rpc_transport_zephyr_uart_init(struct rpc_transport *t) {
  if (!device_is_ready(uart_dev)) return -1;
  t->read = zephyr_uart_read;
  t->write = zephyr_uart_write;
  t->ctx = NULL;
  return 0;
}
