/* RPC transport on an ARM CMSDK APB UART (mps2-an500 UART0 at 0x40004000; QEMU
 * connects it to -serial, e.g. tcp:127.0.0.1:P,server=on,wait=on,nodelay=on).
 *
 * Polling, no interrupts: the server only reads while it waits for a request,
 * and the UART's 1-byte receive register is drained as fast as bytes arrive. */
#include "rpc_transport.h"

#define UART_DATA 0x00u
#define UART_STATE 0x04u
#define UART_CTRL 0x08u
#define UART_BAUDDIV 0x10u
#define STATE_TX_FULL 0x01u
#define STATE_RX_FULL 0x02u
#define STATE_RX_OVERRUN 0x08u /* write 1 to clear */
#define CTRL_TX_EN 0x01u
#define CTRL_RX_EN 0x02u

static volatile uint32_t *reg(void *ctx, uintptr_t offset) {
  return (volatile uint32_t *)((uintptr_t)ctx + offset);
}

static int uart_read(void *ctx, uint8_t *buf, size_t n) {
  size_t got = 0u;
  if (n == 0u) return 0;
  while ((*reg(ctx, UART_STATE) & STATE_RX_FULL) == 0u) {
  }
  do {
    buf[got++] = (uint8_t)(*reg(ctx, UART_DATA) & 0xFFu);
  } while (got < n && (*reg(ctx, UART_STATE) & STATE_RX_FULL) != 0u);
  if ((*reg(ctx, UART_STATE) & STATE_RX_OVERRUN) != 0u) *reg(ctx, UART_STATE) = STATE_RX_OVERRUN;
  return (int)got;
}

static int uart_write(void *ctx, const uint8_t *buf, size_t n) {
  size_t i;
  for (i = 0u; i < n; i++) {
    while ((*reg(ctx, UART_STATE) & STATE_TX_FULL) != 0u) {
    }
    *reg(ctx, UART_DATA) = buf[i];
  }
  return (int)n;
}

void rpc_transport_cmsdk_uart_init(struct rpc_transport *t, uintptr_t base, uint32_t bauddiv) {
  t->read = uart_read;
  t->write = uart_write;
  t->ctx = (void *)base;
  *reg(t->ctx, UART_CTRL) = 0u;
  *reg(t->ctx, UART_BAUDDIV) = bauddiv < 16u ? 16u : bauddiv;
  *reg(t->ctx, UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN;
}
