/* RPC transport over Xtensa semihosting (QEMU -semihosting): the `simcall` read and write
 * calls on file descriptors 0 and 1, which QEMU maps to its own stdin and stdout.
 *
 * Why: QEMU's Xtensa sim machine has no UART; its semihosting pipe is how the host talks
 * to the LX7 firmware (and it round-trips a frame in well under a millisecond). The
 * simcall itself is board_simcall() in board_xtensa_sim.c (llvm-mc 22 has no mnemonic). */
#include "rpc_transport.h"

#define SIMCALL_READ 3
#define SIMCALL_WRITE 4
#define HOST_STDIN 0
#define HOST_STDOUT 1

int32_t board_simcall(int32_t nr, int32_t a, int32_t b, int32_t c);

/* read(2) semantics: blocks until at least one byte is there; 0 is end of file. */
static int sx_read(void *ctx, uint8_t *buf, size_t n) {
  int32_t got;
  (void)ctx;
  if (n == 0u) return 0;
  got = board_simcall(SIMCALL_READ, HOST_STDIN, (int32_t)(uintptr_t)buf, (int32_t)n);
  return got > 0 ? (int)got : -1;
}

static int sx_write(void *ctx, const uint8_t *buf, size_t n) {
  size_t done = 0u;
  (void)ctx;
  while (done < n) {
    int32_t put = board_simcall(SIMCALL_WRITE, HOST_STDOUT, (int32_t)(uintptr_t)(buf + done), (int32_t)(n - done));
    if (put <= 0) return -1;
    done += (size_t)put;
  }
  return (int)n;
}

void rpc_transport_xtensa_semihost_init(struct rpc_transport *t) {
  t->read = sx_read;
  t->write = sx_write;
  t->ctx = NULL;
}
