/* Runs runtime_c/minilibc/mathf.c on the emulated LX7 (QEMU sim, de233_fpu) over every
 * STRIDE-th 32-bit input pattern and prints an FNV-1a hash of expf, logf, log1pf, sqrtf and
 * 1/x (__divsf3) results: tests/test_minilibc.py compares it with the hash of the host build
 * of the same file (minilibc_accuracy.c's `hash` mode), so the accuracy measured on the host
 * is the device's accuracy. Prints "HASH <8 hex digits>", then "DONE". */
#include <math.h>
#include <stdint.h>

#include "board.h"

#ifndef STRIDE
#define STRIDE 65537u
#endif

typedef union {
  float f;
  uint32_t u;
} float_bits;

static uint32_t bits(float f) {
  float_bits v;
  v.f = f;
  if ((v.u & 0x7fffffffu) > 0x7f800000u) v.u = 0x7fc00000u; /* NaN payloads are the FPU's choice */
  return v.u;
}

int main(void) {
  uint32_t h = 2166136261u, i, j, k, n = (uint32_t)((0x100000000ull + STRIDE - 1u) / STRIDE);
  for (i = 0u; i < n; i++) {
    float_bits x;
    uint32_t v[5];
    x.u = i * STRIDE;
    v[0] = bits(expf(x.f));
    v[1] = bits(logf(x.f));
    v[2] = bits(log1pf(x.f));
    v[3] = bits(1.0f / x.f);
    v[4] = bits(sqrtf(x.f));
    for (j = 0u; j < 5u; j++) {
      for (k = 0u; k < 4u; k++) h = (h ^ ((v[j] >> (8u * k)) & 0xffu)) * 16777619u;
    }
  }
  board_puts("HASH ");
  board_put_hex32(h);
  board_puts("\nDONE\n");
  return 0;
}
