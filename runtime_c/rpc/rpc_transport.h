/* The byte pipe the RPC server talks over, and the transports that provide one.
 *
 * Why an interface: the same server runs over a UART (boards, QEMU -serial),
 * semihosting (QEMU's stdio, ~100x faster than its UART; ARM and Xtensa flavours)
 * and Zephyr's UART driver; each transport is one small file that fills this struct. */
#ifndef MAMBA_TVM_RPC_TRANSPORT_H_
#define MAMBA_TVM_RPC_TRANSPORT_H_

#include <stddef.h>
#include <stdint.h>

struct rpc_transport {
  /* Blocks until at least one byte is available, then reads up to n bytes.
   * Returns the count (>= 1), or < 0 when the link is closed or failed. */
  int (*read)(void *ctx, uint8_t *buf, size_t n);
  /* Writes all n bytes. Returns n, or < 0 on failure. */
  int (*write)(void *ctx, const uint8_t *buf, size_t n);
  void *ctx;
};

/* CMSDK APB UART (mps2-an500 UART0 is at 0x40004000). bauddiv: clock / baud, >= 16. */
void rpc_transport_cmsdk_uart_init(struct rpc_transport *t, uintptr_t base, uint32_t bauddiv);

/* ARM semihosting SYS_READ/SYS_WRITE on ":tt" (the debugger's / QEMU's stdin and
 * stdout). Returns 0, or -1 when the handles cannot be opened. read() returns -1
 * at end of input, so the server stops when the host closes the pipe. */
int rpc_transport_semihost_init(struct rpc_transport *t);

/* Xtensa semihosting (QEMU -semihosting): simcall read/write on fds 0 and 1, QEMU's
 * stdin and stdout. read() returns -1 at end of input, as above. */
void rpc_transport_xtensa_semihost_init(struct rpc_transport *t);

/* Zephyr: polling uart_poll_in/uart_poll_out on the chosen zephyr,console.
 * Returns 0, or -1 when the device is not ready. */
int rpc_transport_zephyr_uart_init(struct rpc_transport *t);

#endif /* MAMBA_TVM_RPC_TRANSPORT_H_ */
