/* <math.h> of the minimal C library for cores that have none here (the Xtensa LX7 under
 * clang-22: Debian ships no libc or libm for it). Only what generated model code and the
 * harnesses call; single precision only (the LX7's FPU has no double, and there is no
 * soft-double runtime). Implemented, with their measured accuracy, in mathf.c. */
#ifndef MINILIBC_MATH_H_
#define MINILIBC_MATH_H_

float fabsf(float x);
float expf(float x);
float logf(float x);
float log1pf(float x);
float sqrtf(float x);

#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))

#endif /* MINILIBC_MATH_H_ */
