/* <string.h> of the minimal C library (see math.h): the memory functions the model,
 * the RPC server and the compiler's own lowering of struct copies and zeroing call. */
#ifndef MINILIBC_STRING_H_
#define MINILIBC_STRING_H_

#include <stddef.h>

void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
size_t strlen(const char *s);

#endif /* MINILIBC_STRING_H_ */
