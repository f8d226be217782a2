/* Host accuracy check of runtime_c/minilibc/mathf.c (built with -DMINILIBC_PREFIX=mini_).
 *
 * Usage: minilibc_accuracy [stride] [div_pairs]
 *   expf, logf, log1pf: every `stride`-th 32-bit pattern (stride 1 = all 2^32 inputs), error
 *   in ulps against the double-precision glibc result rounded to float's ulp at that value;
 *   __divsf3: `div_pairs` random bit-pattern pairs (a quarter with quotients near 1) plus every
 *   pair of special values, compared bit for bit with the host's IEEE division; sqrtf: every
 *   `stride`-th pattern, bit for bit with the host's IEEE square root.
 * Prints one line per function: "<name> max_ulp <v> at <hex input> inputs <n>" and
 * "__divsf3 mismatches <m> pairs <n>". Exit status 0 always; the Python test holds the bounds.
 *
 * Also, with a third argument `hash`, prints an FNV-1a hash of the results over the inputs
 * of the given stride, as minilibc_hash_lx7.c does on QEMU's LX7 (tests/test_minilibc.py). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float mini___divsf3(float a, float b);
float mini_expf(float x);
float mini_logf(float x);
float mini_log1pf(float x);
float mini_sqrtf(float x);

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (uint32_t)g_rng;
}

/* |got - ref| in units of the float ulp at ref (subnormal ulp 2^-149 below 2^-126). */
static double ulps(float got, double ref) {
  int e;
  float r;
  if (isnan(ref)) return isnan(got) ? 0.0 : 1e9;
  if (isinf(ref) || isinf(got)) return ((float)ref == got) ? 0.0 : 1e9;
  r = (float)ref;
  if (isinf(r)) r = copysignf(3.4028235e38f, r); /* ref rounds to inf: measure at FLT_MAX */
  frexpf(r == 0.0f ? 1e-38f : r, &e);
  return fabs((double)got - ref) / ldexp(1.0, (e - 24 < -149) ? -149 : e - 24);
}

struct worst {
  double ulp;
  uint32_t at;
  uint64_t n;
};

static void track(struct worst *w, double u, uint32_t at) {
  w->n++;
  if (u > w->ulp) {
    w->ulp = u;
    w->at = at;
  }
}

static const uint32_t k_special[] = {
    0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007fffffu, 0x00800000u, 0x3f800000u, 0xbf800000u,
    0x3f7fffffu, 0x3f800001u, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
    0x40000000u, 0x40400000u, 0x34000000u, 0x0ff00000u, 0x70000000u, 0x00400000u, 0x3fc00000u, 0x00000003u};

int main(int argc, char **argv) {
  uint64_t stride = argc > 1 ? strtoull(argv[1], NULL, 10) : 257u;
  long div_pairs = argc > 2 ? strtol(argv[2], NULL, 10) : 1000000L;
  int hash_mode = argc > 3 && strcmp(argv[3], "hash") == 0;
  struct worst we = {0, 0, 0}, wl = {0, 0, 0}, wp = {0, 0, 0};
  uint64_t u, mismatches = 0, pairs = 0, sqrt_bad = 0, sqrt_n = 0;
  uint32_t h = 2166136261u;
  size_t i, j;
  long k;
  if (stride == 0u) stride = 1u;

  for (u = 0; u < 0x100000000ull; u += stride) {
    float x = from_bits((uint32_t)u);
    float e = mini_expf(x), l = mini_logf(x), p = mini_log1pf(x);
    if (hash_mode) {
      float d = mini___divsf3(1.0f, x);
      uint32_t v[5];
      v[0] = bits(e), v[1] = bits(l), v[2] = bits(p), v[3] = bits(d), v[4] = bits(mini_sqrtf(x));
      for (i = 0; i < 5; i++) {
        if ((v[i] & 0x7fffffffu) > 0x7f800000u) v[i] = 0x7fc00000u; /* NaN payloads are the FPU's choice */
        for (j = 0; j < 4; j++) h = (h ^ ((v[i] >> (8u * j)) & 0xffu)) * 16777619u;
      }
      continue;
    }
    if (isnan(x)) continue;
    {
      float got = mini_sqrtf(x), want = sqrtf(x);
      sqrt_n++;
      if (bits(got) != bits(want) && !(isnan(got) && isnan(want))) sqrt_bad++;
    }
    track(&we, ulps(e, exp((double)x)), (uint32_t)u);
    if (x > 0.0f) track(&wl, ulps(l, log((double)x)), (uint32_t)u);
    if (x >= -1.0f) track(&wp, ulps(p, log1p((double)x)), (uint32_t)u);
  }
  if (hash_mode) {
    printf("hash %08x\n", h);
    return 0;
  }
  for (k = 0; k < div_pairs; k++) {
    float a = from_bits(rnd()), b = from_bits(rnd());
    if (k % 4 == 1) b = from_bits((bits(b) & 0x807fffffu) | (bits(a) & 0x7f800000u)); /* quotient near 1 */
    if (k % 8 == 3) b = from_bits((bits(b) & 0x807fffffu) | 0x7e800000u);             /* subnormal quotients */
    {
      float got = mini___divsf3(a, b), want = a / b;
      pairs++;
      if (bits(got) != bits(want) && !(isnan(got) && isnan(want))) mismatches++;
    }
  }
  for (i = 0; i < sizeof k_special / sizeof k_special[0]; i++) {
    for (j = 0; j < sizeof k_special / sizeof k_special[0]; j++) {
      float a = from_bits(k_special[i]), b = from_bits(k_special[j]);
      float got = mini___divsf3(a, b), want = a / b;
      pairs++;
      if (bits(got) != bits(want) && !(isnan(got) && isnan(want))) mismatches++;
    }
  }
  printf("expf max_ulp %.4f at %08x inputs %llu\n", we.ulp, we.at, (unsigned long long)we.n);
  printf("logf max_ulp %.4f at %08x inputs %llu\n", wl.ulp, wl.at, (unsigned long long)wl.n);
  printf("log1pf max_ulp %.4f at %08x inputs %llu\n", wp.ulp, wp.at, (unsigned long long)wp.n);
  printf("sqrtf mismatches %llu inputs %llu\n", (unsigned long long)sqrt_bad, (unsigned long long)sqrt_n);
  printf("__divsf3 mismatches %llu pairs %llu\n", (unsigned long long)mismatches, (unsigned long long)pairs);
  return 0;
}
