/* The harness console, shared by every board: a line buffer and number formatting on
 * top of the board's board_console_write (semihosting on both QEMU machines).
 *
 * Why by hand: no printf (see board.h); the host parses these lines (device/qemu.py). */
#include <stdint.h>

#include "board.h"

#define CONSOLE_BUF 128u
static char g_console[CONSOLE_BUF];
static uint32_t g_console_len;

void board_flush(void) {
  if (g_console_len == 0u) return;
  board_console_write(g_console, g_console_len);
  g_console_len = 0u;
}

void board_putc(char c) {
  if (c == '\0') return; /* some semihosting calls cannot carry NUL */
  g_console[g_console_len++] = c;
  if (c == '\n' || g_console_len == CONSOLE_BUF) board_flush();
}

void board_puts(const char *s) {
  while (*s != '\0') board_putc(*s++);
}

void board_put_u32(uint32_t v) {
  char digits[10];
  uint32_t n = 0u;
  do {
    digits[n++] = (char)('0' + (v % 10u));
    v /= 10u;
  } while (v != 0u);
  while (n > 0u) board_putc(digits[--n]);
}

void board_put_i32(int32_t v) {
  if (v < 0) {
    board_putc('-');
    board_put_u32(0u - (uint32_t)v); /* well defined for INT32_MIN too */
  } else {
    board_put_u32((uint32_t)v);
  }
}

void board_put_hex32(uint32_t v) {
  static const char hex[] = "0123456789abcdef";
  int shift;
  for (shift = 28; shift >= 0; shift -= 4) board_putc(hex[(v >> (uint32_t)shift) & 0xFu]);
}
