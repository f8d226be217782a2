/* RPC transport over ARM semihosting: SYS_READ/SYS_WRITE on ":tt", which QEMU
 * (-semihosting-config enable=on,target=native) maps to its own stdin/stdout.
 *
 * Why: QEMU's CMSDK UART moves ~55 us per byte; a pipe through semihosting
 * round-trips a frame in ~0.1 ms, so CI uses this. On a board it needs a
 * debugger that serves semihosting, and the core halts on every call, so
 * boards use the UART transport instead. */
#include "rpc_transport.h"

#define SYS_OPEN 0x01u
#define SYS_WRITE 0x05u
#define SYS_READ 0x06u
#define OPEN_MODE_R 0u /* ":tt" opened "r" is stdin ... */
#define OPEN_MODE_W 4u /* ... and "w" is stdout */

struct semihost_ctx {
  int32_t in, out;
};

static int32_t semihost(uint32_t op, const void *arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return (int32_t)r0;
}

/* SYS_READ returns the number of bytes NOT read: n means end of file. QEMU
 * blocks until at least one byte is there and returns what the pipe holds. */
static int sh_read(void *ctx, uint8_t *buf, size_t n) {
  const struct semihost_ctx *c = (const struct semihost_ctx *)ctx;
  uint32_t args[3];
  int32_t left;
  if (n == 0u) return 0;
  args[0] = (uint32_t)c->in;
  args[1] = (uint32_t)(uintptr_t)buf;
  args[2] = (uint32_t)n;
  left = semihost(SYS_READ, args);
  if (left < 0 || (uint32_t)left >= (uint32_t)n) return -1;
  return (int)(n - (uint32_t)left);
}

static int sh_write(void *ctx, const uint8_t *buf, size_t n) {
  const struct semihost_ctx *c = (const struct semihost_ctx *)ctx;
  size_t done = 0u;
  while (done < n) {
    uint32_t args[3];
    int32_t left;
    args[0] = (uint32_t)c->out;
    args[1] = (uint32_t)(uintptr_t)(buf + done);
    args[2] = (uint32_t)(n - done);
    left = semihost(SYS_WRITE, args);
    if (left < 0 || (uint32_t)left >= (uint32_t)(n - done)) return -1;
    done += (n - done) - (uint32_t)left;
  }
  return (int)n;
}

static int32_t open_tt(uint32_t mode) {
  static const char tt[] = ":tt";
  uint32_t args[3];
  args[0] = (uint32_t)(uintptr_t)tt;
  args[1] = mode;
  args[2] = (uint32_t)(sizeof tt - 1u);
  return semihost(SYS_OPEN, args);
}

int rpc_transport_semihost_init(struct rpc_transport *t) {
  static struct semihost_ctx ctx;
  ctx.in = open_tt(OPEN_MODE_R);
  ctx.out = open_tt(OPEN_MODE_W);
  if (ctx.in < 0 || ctx.out < 0) return -1;
  t->read = sh_read;
  t->write = sh_write;
  t->ctx = &ctx;
  return 0;
}
