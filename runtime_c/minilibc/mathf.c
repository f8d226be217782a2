/* Single-precision math for cores without a C library here (the Xtensa LX7 under clang-22).
 *
 * Why it exists: Debian has no libm for the LX7, LLVM 22 lowers float division to a
 * __divsf3 libcall and keeps expf/log1pf calls, and the generated kernels need those
 * (the scan's exp(delta*A) and softplus, the sigmoids). Everything here is float or
 * integer arithmetic only: the LX7 FPU has no double and there is no soft-double runtime,
 * so a double literal or a double operation would not even link.
 *
 * Accuracy, measured on the host against double precision (tests/test_minilibc.py; every
 * 257th input pattern in CI, all 2^32 in the slow test): expf <= 1.5 ulp, logf and log1pf
 * <= 1.5 ulp, __divsf3 and sqrtf correctly rounded (bit-identical to the host's IEEE division
 * and square root; round to nearest even, subnormals included).
 * The device computes the same bits as the host build of this file (checked on QEMU).
 *
 * Built with -DMINILIBC_PREFIX=name_ on the host so that its functions do not replace the
 * host's own libm and libgcc (the accuracy test calls both). */
#include <stdint.h>

#ifdef MINILIBC_PREFIX
#define MINILIBC_CAT2(a, b) a##b
#define MINILIBC_CAT(a, b) MINILIBC_CAT2(a, b)
#define NAME(f) MINILIBC_CAT(MINILIBC_PREFIX, f)
#else
#define NAME(f) f
#endif

float NAME(__divsf3)(float a, float b);
float NAME(fabsf)(float x);
float NAME(expf)(float x);
float NAME(logf)(float x);
float NAME(log1pf)(float x);
float NAME(sqrtf)(float x);

typedef union {
  float f;
  uint32_t u;
} float_bits;

static uint32_t bits_of(float f) {
  float_bits v;
  v.f = f;
  return v.u;
}

static float float_of(uint32_t u) {
  float_bits v;
  v.u = u;
  return v.f;
}

#define SIGN_BIT 0x80000000u
#define ABS_MASK 0x7fffffffu
#define INF_BITS 0x7f800000u
#define QNAN_BITS 0x7fc00000u
#define QUIET_BIT 0x00400000u
#define MANT_MASK 0x007fffffu
#define HIDDEN_BIT 0x00800000u

/* 2^e as a float, for normal results (-126 <= e <= 127). */
static float pow2(int32_t e) { return float_of((uint32_t)(e + 127) << 23); }

/* ---- division --------------------------------------------------------------------- */

/* Normalizes a nonzero significand (subnormal input: shifts it up, lowering the exponent). */
static uint32_t normalize(uint32_t mant, int32_t *exp) {
  if (*exp == 0) {
    *exp = 1;
    while ((mant & HIDDEN_BIT) == 0u) {
      mant <<= 1;
      *exp -= 1;
    }
    return mant;
  }
  return mant | HIDDEN_BIT;
}

/* IEEE-754 binary32 a / b, round to nearest even, with subnormals, infinities and NaNs.
 * Integer only: long division in three 8-bit steps with the DIV32 option's quou/remu. */
float NAME(__divsf3)(float a, float b) {
  uint32_t ua = bits_of(a), ub = bits_of(b);
  uint32_t sign = (ua ^ ub) & SIGN_BIT;
  int32_t ea = (int32_t)((ua >> 23) & 0xffu), eb = (int32_t)((ub >> 23) & 0xffu);
  uint32_t ma = ua & MANT_MASK, mb = ub & MANT_MASK;
  uint32_t q, r, sticky, packed;
  int32_t e, i;

  if (ea == 0xff) {
    if (ma != 0u) return float_of(ua | QUIET_BIT);                  /* NaN / x */
    if (eb == 0xff) return float_of(mb != 0u ? (ub | QUIET_BIT) : QNAN_BITS); /* inf/NaN, inf/inf */
    return float_of(sign | INF_BITS);                                /* inf / finite */
  }
  if (eb == 0xff) {
    if (mb != 0u) return float_of(ub | QUIET_BIT);                  /* x / NaN */
    return float_of(sign);                                           /* finite / inf */
  }
  if (eb == 0 && mb == 0u) return float_of((ea == 0 && ma == 0u) ? QNAN_BITS : (sign | INF_BITS)); /* x / 0 */
  if (ea == 0 && ma == 0u) return float_of(sign);                   /* 0 / x */

  ma = normalize(ma, &ea);
  mb = normalize(mb, &eb);
  e = ea - eb + 127;
  if (ma < mb) { /* quotient of the significands in [1, 2) */
    ma <<= 1;
    e -= 1;
  }
  q = 1u; /* the leading quotient bit; r < mb < 2^24 */
  r = ma - mb;
  for (i = 0; i < 3; i++) {
    uint32_t d;
    r <<= 8;
    d = r / mb;
    r -= d * mb;
    q = (q << 8) | d;
  } /* q in [2^24, 2^25): 24 significant bits and one guard bit */
  sticky = r != 0u;
  if (e >= 0xff) return float_of(sign | INF_BITS);
  if (e <= 0) { /* subnormal result: shift right, collecting the lost bits */
    int32_t shift = 1 - e;
    if (shift > 25) {
      sticky |= q != 0u;
      q = 0u;
    } else {
      sticky |= (q & ((1u << shift) - 1u)) != 0u;
      q >>= shift;
    }
    e = 0;
  }
  packed = ((uint32_t)e << 23) | ((q >> 1) & MANT_MASK);
  if ((q & 1u) != 0u && (sticky || (packed & 1u) != 0u)) packed += 1u; /* a carry into the exponent is right */
  return float_of(sign | packed);
}

/* ---- exponential ------------------------------------------------------------------ */

float NAME(fabsf)(float x) { return float_of(bits_of(x) & ABS_MASK); }

/* e^x: x = k*ln2 + r with |r| <= ln2/2 (Cody-Waite: ln2 split so that k*LN2_HI is exact),
 * e^r by its Taylor polynomial to degree 7, then scaled by 2^k. */
float NAME(expf)(float x) {
  const float inv_ln2 = 1.44269502e+00f;
  const float ln2_hi = 6.9314575195e-01f; /* 0x3f317200: the low 9 bits are zero */
  const float ln2_lo = 1.4286067653e-06f; /* ln2 - ln2_hi */
  uint32_t ux = bits_of(x), ax = ux & ABS_MASK;
  int32_t k;
  float kf, r, p, y;

  if (ax > INF_BITS) return x + x;                    /* NaN */
  if (ax == INF_BITS) return (ux >> 31) != 0u ? 0.0f : x;
  if (x > 88.7228317f) return float_of(INF_BITS);     /* overflows */
  if (x < -103.972084f) return 0.0f;                  /* underflows below the smallest subnormal */
  if (ax < 0x39000000u) return 1.0f + x;              /* |x| < 2^-13: e^x = 1 + x to 1/2 ulp */

  /* k = round(x / ln2); the +-0.5 is built from bits because LLVM 22 for Xtensa crashes on a
   * choice between two float constants (`c ? 0.5f : -0.5f`). */
  k = (int32_t)(x * inv_ln2 + float_of(0x3f000000u | (ux & SIGN_BIT)));
  kf = (float)k;
  r = (x - kf * ln2_hi) - kf * ln2_lo;
  p = 1.98412698e-04f;       /* 1/5040 */
  p = p * r + 1.38888889e-03f; /* 1/720 */
  p = p * r + 8.33333333e-03f; /* 1/120 */
  p = p * r + 4.16666667e-02f; /* 1/24 */
  p = p * r + 1.66666667e-01f; /* 1/6 */
  p = p * r + 0.5f;
  y = 1.0f + (r + (r * r) * p);
  if (k > 127) return y * 2.0f * pow2(127);           /* k = 128: 2^128 does not exist as a float */
  if (k >= -126) return y * pow2(k);
  return (y * pow2(k + 64)) * pow2(-64);              /* subnormal result: round once, at the end */
}

/* ---- logarithms ------------------------------------------------------------------- */

/* log(2^k * (1 + f)) + c for f in [sqrt(2)/2 - 1, sqrt(2) - 1], c a small correction term:
 * fdlibm's reduction s = f / (2 + f), log(1 + f) = 2s + s*R(s^2), in float. */
static float log_reduced(float f, int32_t k, float c) {
  const float ln2_hi = 6.9313812256e-01f; /* 0x3f317180 */
  const float ln2_lo = 9.0580006145e-06f; /* 0x3717f7d1 */
  const float lg1 = 6.6666662693e-01f, lg2 = 4.0000972152e-01f;
  const float lg3 = 2.8498786688e-01f, lg4 = 2.4279078841e-01f;
  float s = f / (2.0f + f);
  float z = s * s, w = z * z;
  float r = z * (lg1 + w * lg3) + w * (lg2 + w * lg4);
  float half_f2 = 0.5f * f * f;
  float kf = (float)k;
  return kf * ln2_hi - ((half_f2 - (s * (half_f2 + r) + (kf * ln2_lo + c))) - f);
}

/* Splits the positive normal u into 2^k * m with m in [sqrt(2)/2, sqrt(2)); returns m's bits. */
static uint32_t split_exponent(uint32_t u, int32_t *k) {
  uint32_t mant = u & MANT_MASK;
  *k += (int32_t)(u >> 23) - 127;
  if (mant > 0x3504f3u) { /* m >= sqrt(2): use m/2 */
    *k += 1;
    return mant | 0x3f000000u;
  }
  return mant | 0x3f800000u;
}

float NAME(logf)(float x) {
  uint32_t ux = bits_of(x), m;
  int32_t k = 0;
  if ((ux & ABS_MASK) > INF_BITS) return x + x;                     /* NaN */
  if ((ux & ABS_MASK) == 0u) return float_of(SIGN_BIT | INF_BITS); /* log(+-0) = -inf */
  if ((ux >> 31) != 0u) return float_of(QNAN_BITS);                /* log(x < 0) */
  if (ux == INF_BITS) return x;
  if (ux < HIDDEN_BIT) { /* subnormal: scale by 2^25 */
    ux = bits_of(x * 33554432.0f);
    k = -25;
  }
  m = split_exponent(ux, &k); /* sets k: not inside the call below (argument order) */
  return log_reduced(float_of(m) - 1.0f, k, 0.0f);
}

/* log(1 + x) for x >= -1: u = 1 + x rounded, with its rounding error c recovered exactly
 * (Fast2Sum), so that log(u) + c/u keeps the digits of x that 1 + x lost. */
float NAME(log1pf)(float x) {
  uint32_t ux = bits_of(x), ax = ux & ABS_MASK, uu;
  int32_t k = 0;
  float u, c, m, c_scaled;
  if (ax > INF_BITS) return x + x;                                  /* NaN */
  if (ux == 0xbf800000u) return float_of(SIGN_BIT | INF_BITS);      /* log1p(-1) = -inf */
  if (ux > 0xbf800000u) return float_of(QNAN_BITS);                 /* x < -1 */
  if (ax == INF_BITS) return x;
  if (ax < 0x33800000u) return x;                                   /* |x| < 2^-24 */
  u = 1.0f + x;
  c = (ax <= 0x3f800000u) ? ((1.0f - u) + x) : ((x - u) + 1.0f);
  uu = split_exponent(bits_of(u), &k);
  m = float_of(uu);
  /* c * 2^-k, or nothing where it cannot matter (2^k >= 2^127 means x is huge) */
  c_scaled = (k < 127) ? c * pow2(-k) : 0.0f;
  return log_reduced(m - 1.0f, k, c_scaled / m);
}

/* ---- square root -------------------------------------------------------------------- */

/* sqrt(x), correctly rounded (a square root of a float is never exactly halfway between two
 * floats, so the remainder decides). Integer only: the significand, shifted so the exponent
 * left over is even, has a 24-bit integer square root, found digit by digit. RMSNorm and
 * LayerNorm call it (as 1/sqrtf) in generated code. */
float NAME(sqrtf)(float x) {
  uint32_t ux = bits_of(x), m, root = 0u, bit;
  int32_t e, shift;
  uint64_t rem, trial;
  if ((ux & ABS_MASK) == 0u) return x;            /* +-0 */
  if ((ux & ABS_MASK) > INF_BITS) return float_of(ux | QUIET_BIT); /* NaN */
  if ((ux >> 31) != 0u) return float_of(QNAN_BITS);                /* x < 0 */
  if (ux == INF_BITS) return x;                                     /* +inf */
  e = (int32_t)(ux >> 23);
  m = ux & MANT_MASK;
  if (e == 0) {                                   /* subnormal */
    e = 1;
    while ((m & HIDDEN_BIT) == 0u) {
      m <<= 1;
      e -= 1;
    }
  } else {
    m |= HIDDEN_BIT;
  }
  e -= 127;                                       /* x = m * 2^(e - 23), m in [2^23, 2^24) */
  /* M = m * 2^s in [2^46, 2^48) with e - 23 - s even: sqrt(M) in [2^23, 2^24) */
  rem = (uint64_t)m << ((e & 1) ? 24 : 23);
  e = (e - 23 - ((e & 1) ? 24 : 23)) / 2;         /* sqrt(x) = sqrt(M) * 2^e */
  for (shift = 23; shift >= 0; shift--) {         /* remainder rem = M - root^2 as root grows */
    bit = 1u << shift;
    trial = (uint64_t)(2u * root + bit) << shift;   /* (root + bit)^2 - root^2; no 64-bit multiply */
    if (rem >= trial) {
      rem -= trial;
      root += bit;
    }
  }
  if (rem > root) root += 1u;                     /* M > (root + 1/2)^2 = root^2 + root + 1/4 */
  return float_of(((uint32_t)(e + 23 + 127) << 23) + (root - HIDDEN_BIT));
}
