/* RPC server: command handlers over the frame layer (see rpc_server.h, docs/rpc.md). */
#include "rpc_server.h"

#include <string.h>

#define PAYLOAD(s) ((s)->raw + RPC_HEADER_BYTES)

static void put_u16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v & 0xFFu);
  p[1] = (uint8_t)((v >> 8) & 0xFFu);
}

static void put_u32(uint8_t *p, uint32_t v) {
  put_u16(p, v & 0xFFFFu);
  put_u16(p + 2, v >> 16);
}

static uint32_t get_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }

static uint32_t get_u32(const uint8_t *p) { return get_u16(p) | (get_u16(p + 2) << 16); }

static int send_bytes(struct rpc_server *s, const uint8_t *buf, size_t n) {
  return (n == 0u || s->io.write(s->io.ctx, buf, n) < 0) ? -1 : 0;
}

/* Framing errors and BUSY go out from their own buffer so the retry cache survives. */
static int send_error(struct rpc_server *s, uint8_t cmd, uint16_t seq, int status, uint32_t detail) {
  uint8_t raw[RPC_MIN_FRAME + 4u];
  size_t n;
  put_u32(raw + RPC_HEADER_BYTES, detail);
  n = rpc_frame_finish(raw, (uint8_t)(cmd | RPC_REPLY_FLAG), seq, (uint8_t)status, 4u, s->err_tx,
                       sizeof s->err_tx);
  return send_bytes(s, s->err_tx, n);
}

/* A command's result: status, payload length (payload already in PAYLOAD(s)). */
struct result {
  int status;
  size_t len;
};

static struct result ok(size_t len) {
  struct result r;
  r.status = RPC_OK;
  r.len = len;
  return r;
}

/* Error replies carry one u32 detail (expected length, limit, ...). */
static struct result fail(struct rpc_server *s, int status, uint32_t detail) {
  struct result r;
  put_u32(PAYLOAD(s), detail);
  r.status = status;
  r.len = 4u;
  return r;
}

static int is_big_endian(void) {
  const uint16_t one = 1u;
  return *(const uint8_t *)&one == 0u;
}

static struct result cmd_hello(struct rpc_server *s) {
  uint8_t *p = PAYLOAD(s);
  uint8_t flags = 0u;
  if (s->target->call_ticks != NULL) flags |= RPC_FLAG_PROFILE;
  if (is_big_endian()) flags |= RPC_FLAG_BIG_ENDIAN;
  memcpy(p, "MTVM", 4u);
  put_u16(p + 4, RPC_PROTOCOL_VERSION);
  put_u16(p + 6, RPC_MAX_PAYLOAD);
  p[8] = flags;
  p[9] = 0u;
  put_u32(p + 10, s->frames_ok);
  put_u32(p + 14, s->frames_bad);
  return ok(18u);
}

/* At most RPC_MAX_NDIM dims are reported, so INFO always fits one frame. */
static size_t put_shape(uint8_t *p, const uint32_t *shape, uint8_t ndim) {
  uint8_t i;
  if (ndim > RPC_MAX_NDIM) ndim = RPC_MAX_NDIM;
  p[0] = ndim;
  for (i = 0u; i < ndim; i++) put_u32(p + 1 + 4u * i, shape[i]);
  return 1u + 4u * (size_t)ndim;
}

static struct result cmd_info(struct rpc_server *s) {
  const struct rpc_target *t = s->target;
  uint8_t *p = PAYLOAD(s);
  size_t n, name_len = strlen(t->model_name);
  size_t print_len = t->fingerprint ? strlen(t->fingerprint) : 0u;
  if (name_len > 255u) name_len = 255u;
  if (print_len > 64u) print_len = 64u;
  put_u32(p + 0, t->input_count);
  put_u32(p + 4, t->output_count);
  put_u32(p + 8, t->arena_bytes);
  put_u32(p + 12, t->timer_hz);
  put_u32(p + 16, t->units_per_tick);
  p[20] = t->unit;
  p[21] = 0u; /* dtype: float32 */
  put_u16(p + 22, t->num_calls);
  n = 24u;
  n += put_shape(p + n, t->input_shape, t->input_ndim);
  n += put_shape(p + n, t->output_shape, t->output_ndim);
  p[n++] = (uint8_t)name_len;
  memcpy(p + n, t->model_name, name_len);
  n += name_len;
  p[n++] = (uint8_t)print_len;
  if (print_len) memcpy(p + n, t->fingerprint, print_len);
  return ok(n + print_len);
}

static struct result cmd_call_names(struct rpc_server *s, const struct rpc_msg *m) {
  const struct rpc_target *t = s->target;
  uint8_t *p = PAYLOAD(s);
  uint32_t first, i;
  size_t n = 4u;
  if (m->len != 2u) return fail(s, RPC_ERR_BAD_LENGTH, 2u);
  first = get_u16(m->payload);
  if (first > t->num_calls) return fail(s, RPC_ERR_OUT_OF_RANGE, t->num_calls);
  for (i = first; i < t->num_calls; i++) {
    size_t len = strlen(t->call_names[i]);
    if (len > 255u) len = 255u;
    if (n + 1u + len > RPC_MAX_PAYLOAD) break;
    p[n++] = (uint8_t)len;
    memcpy(p + n, t->call_names[i], len);
    n += len;
  }
  put_u16(p, first);
  put_u16(p + 2, i - first);
  return ok(n);
}

static struct result cmd_write_input(struct rpc_server *s, const struct rpc_msg *m) {
  uint32_t size = s->target->input_count * 4u;
  uint32_t offset, len;
  if (m->len < 5u) return fail(s, RPC_ERR_BAD_LENGTH, 5u);
  offset = get_u32(m->payload);
  len = (uint32_t)m->len - 4u;
  if (offset > size || len > size - offset) return fail(s, RPC_ERR_OUT_OF_RANGE, size);
  memcpy((uint8_t *)s->target->input + offset, m->payload + 4, len);
  if (offset + len == size) s->input_ready = 1u;
  put_u32(PAYLOAD(s), offset + len);
  return ok(4u);
}

/* Runs the model once; returns its rc and the elapsed ticks. */
static int32_t timed_run(struct rpc_server *s, uint32_t *ticks) {
  const struct rpc_target *t = s->target;
  uint32_t start;
  int32_t rc;
  s->running = 1u;
  if (t->before_run != NULL) t->before_run();
  start = t->ticks();
  rc = t->run();
  *ticks = t->ticks() - start;
  s->running = 0u;
  s->output_ready = rc == 0;
  return rc;
}

static struct result cmd_run(struct rpc_server *s, const struct rpc_msg *m) {
  uint32_t ticks;
  int32_t rc;
  if (m->len != 0u) return fail(s, RPC_ERR_BAD_LENGTH, 0u);
  if (!s->input_ready) return fail(s, RPC_ERR_NOT_READY, 0u);
  rc = timed_run(s, &ticks);
  s->profile_ready = 0u; /* the hooks (if compiled in) added this run to the table */
  put_u32(PAYLOAD(s), (uint32_t)rc);
  put_u32(PAYLOAD(s) + 4, ticks);
  return ok(8u);
}

static struct result cmd_profile(struct rpc_server *s, const struct rpc_msg *m) {
  const struct rpc_target *t = s->target;
  uint32_t ticks, sum = 0u, i;
  int32_t rc;
  if (m->len != 0u) return fail(s, RPC_ERR_BAD_LENGTH, 0u);
  if (t->call_ticks == NULL) return fail(s, RPC_ERR_UNSUPPORTED, 0u);
  if (!s->input_ready) return fail(s, RPC_ERR_NOT_READY, 0u);
  for (i = 0u; i < t->num_calls; i++) t->call_ticks[i] = t->call_counts[i] = 0u;
  rc = timed_run(s, &ticks);
  for (i = 0u; i < t->num_calls; i++) sum += t->call_ticks[i];
  s->profile_ready = rc == 0;
  put_u32(PAYLOAD(s), (uint32_t)rc);
  put_u32(PAYLOAD(s) + 4, ticks);
  put_u32(PAYLOAD(s) + 8, sum);
  put_u16(PAYLOAD(s) + 12, t->num_calls);
  return ok(14u);
}

static struct result cmd_read_output(struct rpc_server *s, const struct rpc_msg *m) {
  uint32_t size = s->target->output_count * 4u;
  uint32_t offset, len;
  if (m->len != 6u) return fail(s, RPC_ERR_BAD_LENGTH, 6u);
  if (!s->output_ready) return fail(s, RPC_ERR_NOT_READY, 0u);
  offset = get_u32(m->payload);
  len = get_u16(m->payload + 4);
  if (len > RPC_MAX_PAYLOAD || offset > size || len > size - offset) return fail(s, RPC_ERR_OUT_OF_RANGE, size);
  memcpy(PAYLOAD(s), (const uint8_t *)s->target->output + offset, len);
  return ok(len);
}

static struct result cmd_read_profile(struct rpc_server *s, const struct rpc_msg *m) {
  const struct rpc_target *t = s->target;
  uint32_t first, count, i;
  if (m->len != 2u) return fail(s, RPC_ERR_BAD_LENGTH, 2u);
  if (t->call_ticks == NULL) return fail(s, RPC_ERR_UNSUPPORTED, 0u);
  if (!s->profile_ready) return fail(s, RPC_ERR_NOT_READY, 0u);
  first = get_u16(m->payload);
  if (first > t->num_calls) return fail(s, RPC_ERR_OUT_OF_RANGE, t->num_calls);
  count = t->num_calls - first;
  if (count > (RPC_MAX_PAYLOAD - 4u) / 8u) count = (RPC_MAX_PAYLOAD - 4u) / 8u;
  put_u16(PAYLOAD(s), first);
  put_u16(PAYLOAD(s) + 2, count);
  for (i = 0u; i < count; i++) {
    put_u32(PAYLOAD(s) + 4 + 8u * i, t->call_ticks[first + i]);
    put_u32(PAYLOAD(s) + 8 + 8u * i, t->call_counts[first + i]);
  }
  return ok(4u + 8u * count);
}

static void clear_state(struct rpc_server *s) {
  const struct rpc_target *t = s->target;
  uint32_t i;
  memset(t->input, 0, (size_t)t->input_count * 4u);
  memset(t->output, 0, (size_t)t->output_count * 4u);
  if (t->call_ticks != NULL)
    for (i = 0u; i < t->num_calls; i++) t->call_ticks[i] = t->call_counts[i] = 0u;
  s->input_ready = s->output_ready = s->profile_ready = 0u;
  s->cached = 0u;
}

static struct result cmd_reset(struct rpc_server *s, const struct rpc_msg *m) {
  if (m->len != 0u) return fail(s, RPC_ERR_BAD_LENGTH, 0u);
  clear_state(s);
  return ok(0u);
}

static struct result dispatch(struct rpc_server *s, const struct rpc_msg *m) {
  switch (m->cmd) {
    case RPC_CMD_HELLO:
      return m->len == 0u ? cmd_hello(s) : fail(s, RPC_ERR_BAD_LENGTH, 0u);
    case RPC_CMD_INFO:
      return m->len == 0u ? cmd_info(s) : fail(s, RPC_ERR_BAD_LENGTH, 0u);
    case RPC_CMD_CALL_NAMES:
      return cmd_call_names(s, m);
    case RPC_CMD_WRITE_INPUT:
      return cmd_write_input(s, m);
    case RPC_CMD_RUN:
      return cmd_run(s, m);
    case RPC_CMD_READ_OUTPUT:
      return cmd_read_output(s, m);
    case RPC_CMD_PROFILE:
      return cmd_profile(s, m);
    case RPC_CMD_READ_PROFILE:
      return cmd_read_profile(s, m);
    case RPC_CMD_RESET:
      return cmd_reset(s, m);
    default:
      return fail(s, RPC_ERR_UNKNOWN_COMMAND, m->cmd);
  }
}

static int handle(struct rpc_server *s, const struct rpc_msg *m) {
  struct result r;
  if (s->running) return send_error(s, m->cmd, m->seq, RPC_ERR_BUSY, 0u);
  if (s->cached && m->cmd == s->last_cmd && m->seq == s->last_seq && m->crc == s->last_crc)
    return send_bytes(s, s->tx, s->tx_len); /* a retry: same reply, no second run */
  r = dispatch(s, m);
  s->tx_len = rpc_frame_finish(s->raw, (uint8_t)(m->cmd | RPC_REPLY_FLAG), m->seq, (uint8_t)r.status, r.len, s->tx,
                               sizeof s->tx);
  s->cached = s->tx_len != 0u;
  s->last_cmd = m->cmd;
  s->last_seq = m->seq;
  s->last_crc = m->crc;
  return send_bytes(s, s->tx, s->tx_len);
}

void rpc_server_init(struct rpc_server *s, const struct rpc_transport *io, const struct rpc_target *target) {
  memset(s, 0, sizeof *s);
  s->io = *io;
  s->target = target;
  rpc_rx_reset(&s->rx);
  clear_state(s);
}

int rpc_server_feed(struct rpc_server *s, const uint8_t *bytes, size_t n) {
  size_t i;
  for (i = 0u; i < n; i++) {
    struct rpc_msg m;
    int status = rpc_rx_push(&s->rx, bytes[i], &m);
    int rc;
    if (status == RPC_RX_PENDING) continue;
    if (status == RPC_OK && (m.cmd & RPC_REPLY_FLAG) == 0u) {
      s->frames_ok++;
      rc = handle(s, &m);
    } else {
      /* A reply-flagged "request" is our own echo or line noise: reject it too. */
      s->frames_bad++;
      if (status == RPC_OK) status = RPC_ERR_UNKNOWN_COMMAND;
      rc = send_error(s, (uint8_t)(m.cmd & ~RPC_REPLY_FLAG), m.seq, status,
                      status == RPC_ERR_FRAME_TOO_LONG ? (uint32_t)RPC_MAX_ENCODED : 0u);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

int rpc_server_poll(struct rpc_server *s) {
  uint8_t buf[64];
  int n = s->io.read(s->io.ctx, buf, sizeof buf);
  if (n <= 0) return -1;
  return rpc_server_feed(s, buf, (size_t)n);
}

void rpc_server_run(struct rpc_server *s) {
  while (rpc_server_poll(s) >= 0) {
  }
}
