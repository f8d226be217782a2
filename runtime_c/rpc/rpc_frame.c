/* COBS framing, CRC-16 and the stream receiver of the RPC protocol (see rpc_frame.h). */
#include "rpc_frame.h"

/* CRC-16/CCITT-FALSE, one nibble at a time: 32 bytes of table instead of 512. */
static const uint16_t k_crc_nibble[16] = {0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u,
                                          0x60C6u, 0x70E7u, 0x8108u, 0x9129u, 0xA14Au, 0xB16Bu,
                                          0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu};

uint16_t rpc_crc16(const uint8_t *data, size_t n, uint16_t crc) {
  size_t i;
  for (i = 0u; i < n; i++) {
    crc = (uint16_t)((crc << 4) ^ k_crc_nibble[((crc >> 12) ^ (data[i] >> 4)) & 0xFu]);
    crc = (uint16_t)((crc << 4) ^ k_crc_nibble[((crc >> 12) ^ data[i]) & 0xFu]);
  }
  return crc;
}

size_t rpc_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
  size_t i, o = 1u, code_pos = 0u;
  uint8_t code = 1u;
  if (cap == 0u) return 0u;
  for (i = 0u; i < n; i++) {
    if (in[i] != 0u) {
      if (o >= cap) return 0u;
      out[o++] = in[i];
      code++;
    }
    if (in[i] == 0u || code == 0xFFu) {
      out[code_pos] = code;
      if (o >= cap) return 0u;
      code_pos = o++;
      code = 1u;
    }
  }
  out[code_pos] = code;
  return o;
}

int rpc_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len) {
  /* In place is safe: the write index never passes the read index. */
  size_t i = 0u, o = 0u;
  while (i < n) {
    size_t k;
    uint8_t code = in[i++];
    if (code == 0u) break; /* a 0x00 inside a frame: invalid */
    for (k = 1u; k < code; k++) {
      if (i >= n || in[i] == 0u || o >= cap) {
        *out_len = o;
        return RPC_ERR_BAD_FRAME;
      }
      out[o++] = in[i++];
    }
    if (code != 0xFFu && i < n) {
      if (o >= cap) break;
      out[o++] = 0u;
    }
    if (i == n) {
      *out_len = o;
      return RPC_OK;
    }
  }
  *out_len = o;
  return RPC_ERR_BAD_FRAME;
}

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v & 0xFFu);
  p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

int rpc_frame_parse(const uint8_t *frame, size_t n, struct rpc_msg *msg) {
  msg->cmd = n >= 1u ? frame[0] : (uint8_t)RPC_CMD_UNKNOWN;
  msg->seq = n >= 3u ? get_u16(frame + 1) : (uint16_t)RPC_SEQ_UNKNOWN;
  msg->status = n >= 4u ? frame[3] : 0u;
  msg->crc = 0u;
  msg->payload = frame + (n >= RPC_HEADER_BYTES ? RPC_HEADER_BYTES : n);
  msg->len = 0u;
  if (n < RPC_MIN_FRAME) return RPC_ERR_BAD_FRAME;
  if (n > RPC_MAX_FRAME) return RPC_ERR_FRAME_TOO_LONG;
  msg->crc = get_u16(frame + n - RPC_CRC_BYTES);
  if (rpc_crc16(frame, n - RPC_CRC_BYTES, RPC_CRC_INIT) != msg->crc) return RPC_ERR_BAD_CRC;
  msg->len = n - RPC_MIN_FRAME;
  return RPC_OK;
}

size_t rpc_frame_finish(uint8_t *raw, uint8_t cmd, uint16_t seq, uint8_t status, size_t len, uint8_t *out,
                        size_t cap) {
  size_t n, enc;
  if (len > RPC_MAX_PAYLOAD || cap < 2u) return 0u;
  raw[0] = cmd;
  put_u16(raw + 1, seq);
  raw[3] = status;
  n = RPC_HEADER_BYTES + len;
  put_u16(raw + n, rpc_crc16(raw, n, RPC_CRC_INIT));
  n += RPC_CRC_BYTES;
  enc = rpc_cobs_encode(raw, n, out, cap - 1u);
  if (enc == 0u) return 0u;
  out[enc] = 0u;
  return enc + 1u;
}

void rpc_rx_reset(struct rpc_rx *rx) {
  rx->len = 0u;
  rx->overflow = 0u;
}

int rpc_rx_push(struct rpc_rx *rx, uint8_t byte, struct rpc_msg *msg) {
  size_t len, decoded = 0u;
  uint8_t overflow;
  int status;
  if (byte != 0u) {
    if (rx->len < sizeof rx->buf)
      rx->buf[rx->len++] = byte;
    else
      rx->overflow = 1u;
    return RPC_RX_PENDING;
  }
  len = rx->len;
  overflow = rx->overflow;
  rpc_rx_reset(rx);
  if (len == 0u && !overflow) return RPC_RX_PENDING;
  status = rpc_cobs_decode(rx->buf, len, rx->buf, sizeof rx->buf, &decoded);
  /* Parse even a damaged frame, so its cmd/seq are echoed as far as known. */
  {
    int parsed = rpc_frame_parse(rx->buf, decoded, msg);
    if (overflow) return RPC_ERR_FRAME_TOO_LONG;
    if (status != RPC_OK) return status;
    return parsed;
  }
}
