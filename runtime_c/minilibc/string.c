/* Memory functions of the minimal C library (see mathf.c for why it exists).
 *
 * Compiled with -ffreestanding: otherwise the compiler may recognize these very loops as
 * memset/memcpy idioms and turn them into calls to themselves. Byte loops: the model calls
 * them for a few small buffers (state init, struct copies), not in its hot loops. */
#include <stddef.h>
#include <stdint.h>

#include <string.h>

void *memset(void *dst, int c, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  while (n-- > 0u) *d++ = (unsigned char)c;
  return dst;
}

void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  while (n-- > 0u) *d++ = *s++;
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  if ((uintptr_t)d < (uintptr_t)s) {
    while (n-- > 0u) *d++ = *s++;
  } else {
    d += n;
    s += n;
    while (n-- > 0u) *--d = *--s;
  }
  return dst;
}

size_t strlen(const char *s) {
  size_t n = 0u;
  while (s[n] != '\0') n++;
  return n;
}
