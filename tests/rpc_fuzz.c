/* Host fuzzer for runtime_c/rpc: rpc_frame.c (COBS, CRC, stream receiver) and
 * rpc_server.c behind it, on a fake model, built with -fsanitize=address,undefined.
 *
 * Usage: rpc_fuzz [frames] [seed]. Feeds `frames` random, valid and mutated
 * frames (bit flips, truncation, splices, garbage, over-long frames) in random
 * chunk sizes, and checks that every byte the server sends back parses as a
 * reply frame with a good CRC, that COBS round-trips, and that the server still
 * answers a clean HELLO at the end. Prints one summary line; exit 1 on a broken
 * invariant (the sanitizers abort on memory errors). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_frame.h"
#include "rpc_server.h"

#define N_IN 300 /* 1200 bytes: more than one WRITE_INPUT frame */
#define N_OUT 7
#define N_CALLS 3

static float g_in[N_IN], g_out[N_OUT];
static const uint32_t k_in_shape[3] = {1u, 30u, 10u}, k_out_shape[2] = {1u, N_OUT};
static const char *const k_names[N_CALLS] = {"k0", "kernel_one", "k2"};
static uint32_t g_ticks[N_CALLS], g_counts[N_CALLS], g_clock;

static uint32_t now(void) { return g_clock += 7u; }

static int32_t fake_run(void) {
  int i;
  float acc = 0.0f;
  for (i = 0; i < N_IN; i++) acc += g_in[i] == g_in[i] ? g_in[i] : 0.0f; /* skip NaN */
  for (i = 0; i < N_OUT; i++) g_out[i] = acc * (float)i;
  for (i = 0; i < N_CALLS; i++) {
    g_ticks[i] += (uint32_t)(i + 1);
    g_counts[i] += 1u;
  }
  return 0;
}

/* ---- checks on what the server sends ------------------------------------ */
static struct rpc_rx g_reply_rx;
static unsigned long g_replies, g_status[16], g_failures;
static int g_last_status = -1;

static void fail(const char *what) {
  fprintf(stderr, "rpc_fuzz: %s\n", what);
  g_failures++;
}

static int capture_write(void *ctx, const uint8_t *buf, size_t n) {
  size_t i;
  (void)ctx;
  for (i = 0; i < n; i++) {
    struct rpc_msg m;
    int st = rpc_rx_push(&g_reply_rx, buf[i], &m);
    if (st == RPC_RX_PENDING) continue;
    if (st != RPC_OK) fail("server sent a frame that does not parse");
    if ((m.cmd & RPC_REPLY_FLAG) == 0u) fail("server reply without the reply flag");
    if (m.status > RPC_ERR_UNSUPPORTED) fail("server reply with an unknown status");
    g_replies++;
    g_status[m.status & 15u]++;
    g_last_status = m.status;
  }
  return (int)n;
}

static int no_read(void *ctx, uint8_t *buf, size_t n) {
  (void)ctx;
  (void)buf;
  (void)n;
  return -1;
}

/* ---- random numbers ---------------------------------------------------- */
static uint32_t g_rng = 0x9E3779B9u;
static uint32_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}
static uint32_t below(uint32_t n) { return n ? rnd() % n : 0u; }

/* ---- frame generation ------------------------------------------------------ */
static const uint8_t k_cmds[] = {RPC_CMD_HELLO,     RPC_CMD_INFO,    RPC_CMD_CALL_NAMES,   RPC_CMD_WRITE_INPUT,
                                 RPC_CMD_RUN,       RPC_CMD_READ_OUTPUT, RPC_CMD_PROFILE, RPC_CMD_READ_PROFILE,
                                 RPC_CMD_RESET,     0x00u,           0x55u,                0x7Fu, 0x91u};

static uint8_t g_raw[RPC_MAX_FRAME + 64];
static uint8_t g_wire[2 * RPC_MAX_ENCODED + 64];

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* A request that is valid as a frame; its payload is sometimes valid for the command. */
static size_t valid_request(uint8_t *out, size_t cap, uint16_t seq) {
  uint8_t cmd = k_cmds[below(sizeof k_cmds)];
  uint8_t *p = g_raw + RPC_HEADER_BYTES;
  size_t len = 0u, i;
  switch (below(3u) == 0u ? 0xFFu : cmd) {
    case RPC_CMD_CALL_NAMES:
    case RPC_CMD_READ_PROFILE:
      p[0] = (uint8_t)below(5u);
      p[1] = 0u;
      len = 2u;
      break;
    case RPC_CMD_WRITE_INPUT:
      len = 4u + 1u + below(RPC_MAX_PAYLOAD - 4u);
      put32(p, below(2u) ? (uint32_t)(N_IN * 4 - (len - 4u)) : below(N_IN * 4 + 8));
      for (i = 4u; i < len; i++) p[i] = (uint8_t)rnd();
      break;
    case RPC_CMD_READ_OUTPUT:
      put32(p, below(N_OUT * 4 + 4));
      p[4] = (uint8_t)below(N_OUT * 4 + 4);
      p[5] = (uint8_t)(below(8u) == 0u ? rnd() : 0u);
      len = 6u;
      break;
    case 0xFFu: /* any length, any bytes */
      len = below(RPC_MAX_PAYLOAD + 1u);
      for (i = 0u; i < len; i++) p[i] = (uint8_t)rnd();
      break;
    default:
      break;
  }
  return rpc_frame_finish(g_raw, cmd, seq, 0u, len, out, cap);
}

static size_t mutate(uint8_t *buf, size_t n, size_t cap) {
  uint32_t kind = below(6u), i;
  if (n == 0u) return 0u;
  switch (kind) {
    case 0: /* flip bits */
      for (i = 0u; i <= below(3u); i++) buf[below((uint32_t)n)] ^= (uint8_t)(1u << below(8u));
      return n;
    case 1: /* truncate (keeps or drops the delimiter) */
      return below((uint32_t)n);
    case 2: /* overwrite bytes */
      for (i = 0u; i <= below(8u); i++) buf[below((uint32_t)n)] = (uint8_t)rnd();
      return n;
    case 3: /* insert random bytes */
    {
      size_t at = below((uint32_t)n), k = 1u + below(16u);
      if (n + k > cap) return n;
      memmove(buf + at + k, buf + at, n - at);
      for (i = 0u; i < k; i++) buf[at + i] = (uint8_t)rnd();
      return n + k;
    }
    case 4: /* drop a zero delimiter, so two frames run together */
      for (i = 0u; i < n; i++)
        if (buf[i] == 0u) {
          buf[i] = (uint8_t)(1u + below(255u));
          break;
        }
      return n;
    default: /* duplicate a slice */
    {
      size_t at = below((uint32_t)n), k = below((uint32_t)(n - at)) + 1u;
      if (n + k > cap) return n;
      memcpy(buf + n, buf + at, k);
      return n + k;
    }
  }
}

static size_t garbage(uint8_t *buf, size_t cap) {
  size_t n = below(below(8u) == 0u ? (uint32_t)cap : 300u), i;
  uint32_t zero_odds = 1u + below(64u);
  for (i = 0u; i < n; i++) buf[i] = below(zero_odds) == 0u ? 0u : (uint8_t)rnd();
  return n;
}

static size_t too_long(uint8_t *buf, size_t cap) {
  size_t n = RPC_MAX_ENCODED + 1u + below(600u), i;
  if (n + 1u > cap) n = cap - 1u;
  for (i = 0u; i < n; i++) buf[i] = (uint8_t)(1u + below(255u));
  buf[n] = 0u;
  return n + 1u;
}

static void feed(struct rpc_server *s, const uint8_t *buf, size_t n) {
  while (n > 0u) {
    size_t k = 1u + below(below(4u) == 0u ? 4u : 700u);
    if (k > n) k = n;
    if (rpc_server_feed(s, buf, k) != 0) fail("rpc_server_feed failed");
    buf += k;
    n -= k;
  }
}

/* Direct checks of the codec on random data. */
static void codec_round_trip(void) {
  static uint8_t data[RPC_MAX_FRAME], enc[RPC_MAX_ENCODED], dec[RPC_MAX_ENCODED];
  size_t n = below(RPC_MAX_FRAME + 1u), i, e, d = 0u;
  uint32_t zero_odds = 1u + below(300u);
  struct rpc_msg m;
  for (i = 0u; i < n; i++) data[i] = below(zero_odds) == 0u ? 0u : (uint8_t)rnd();
  e = rpc_cobs_encode(data, n, enc, sizeof enc);
  if (e == 0u || e > RPC_COBS_MAX(n) || memchr(enc, 0, e) != NULL) fail("COBS encode");
  if (rpc_cobs_decode(enc, e, dec, sizeof dec, &d) != RPC_OK || d != n || memcmp(dec, data, n) != 0)
    fail("COBS round trip");
  if (rpc_cobs_decode(enc, e, enc, sizeof enc, &d) != RPC_OK || d != n || memcmp(enc, data, n) != 0)
    fail("COBS in-place round trip");
  if (rpc_cobs_encode(data, n, enc, below((uint32_t)e)) != 0u) fail("COBS encode ignored its capacity");
  for (i = 0u; i < n; i++) dec[i] = (uint8_t)rnd();
  (void)rpc_cobs_decode(dec, n, dec, below((uint32_t)n + 1u), &d);
  (void)rpc_frame_parse(dec, below((uint32_t)n + 1u), &m);
}

int main(int argc, char **argv) {
  unsigned long frames = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000ul, f;
  struct rpc_transport io;
  struct rpc_target target;
  struct rpc_server *server = calloc(1, sizeof *server); /* host-side test harness only */
  uint16_t seq = 1u;
  if (argc > 2) g_rng = (uint32_t)strtoul(argv[2], NULL, 10) | 1u;
  if (server == NULL) return 2;
  io.read = no_read;
  io.write = capture_write;
  io.ctx = NULL;
  memset(&target, 0, sizeof target);
  target.model_name = "fuzz";
  target.fingerprint = "0123456789abcdef";
  target.input = g_in;
  target.input_count = N_IN;
  target.input_shape = k_in_shape;
  target.input_ndim = 3u;
  target.output = g_out;
  target.output_count = N_OUT;
  target.output_shape = k_out_shape;
  target.output_ndim = 2u;
  target.arena_bytes = 1234u;
  target.num_calls = N_CALLS;
  target.call_names = k_names;
  target.run = fake_run;
  target.ticks = now;
  target.timer_hz = 1000u;
  target.units_per_tick = 1u;
  rpc_rx_reset(&g_reply_rx);

  for (f = 0u; f < frames; f++) {
    size_t n = 0u;
    if (f % 20000u == 0u) { /* alternate a profiling and a plain build */
      target.call_ticks = (f / 20000u) % 2u ? NULL : g_ticks;
      target.call_counts = target.call_ticks ? g_counts : NULL;
      rpc_server_init(server, &io, &target);
    }
    switch (below(8u)) {
      case 0:
      case 1:
      case 2:
        g_wire[n++] = 0u;
        n += valid_request(g_wire + n, sizeof g_wire - n, seq++);
        break;
      case 3:
      case 4:
        g_wire[n++] = 0u;
        n += valid_request(g_wire + n, sizeof g_wire / 2u, seq++);
        n = mutate(g_wire, n, sizeof g_wire);
        break;
      case 5:
        n = garbage(g_wire, sizeof g_wire);
        break;
      case 6:
        n = too_long(g_wire, sizeof g_wire);
        break;
      default:
        codec_round_trip();
        break;
    }
    feed(server, g_wire, n);
  }
  { /* after everything: a clean HELLO still gets an OK reply */
    size_t n;
    g_wire[0] = 0u;
    n = 1u + rpc_frame_finish(g_raw, RPC_CMD_HELLO, seq, 0u, 0u, g_wire + 1, sizeof g_wire - 1u);
    g_last_status = -1;
    feed(server, g_wire, n);
    if (g_last_status != RPC_OK) fail("no OK reply to a clean HELLO after fuzzing");
  }
  printf("frames %lu replies %lu ok %lu bad_crc %lu bad_frame %lu too_long %lu unknown %lu bad_length %lu "
         "out_of_range %lu not_ready %lu unsupported %lu failures %lu\n",
         frames, g_replies, g_status[0], g_status[1], g_status[2], g_status[3], g_status[4], g_status[5],
         g_status[6], g_status[7], g_status[9], g_failures);
  free(server);
  return g_failures ? 1 : 0;
}
