/* Wire format of the mamba_tvm RPC protocol (docs/rpc.md): COBS framing, CRC-16, header.
 *
 * Why its own file: this is the code that meets arbitrary bytes from the wire,
 * so it is kept free of the server and the model and fuzzed on the host under
 * ASan/UBSan (tests/rpc_fuzz.c).
 *
 * A frame on the wire is COBS(header | payload | crc16) followed by one 0x00
 * delimiter; the host also sends a 0x00 before each frame so that garbage left
 * in the receiver is closed off as its own (rejected) frame.
 *
 *   header  = cmd (u8) | seq (u16, little endian) | status (u8)
 *   crc16   = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of header|payload,
 *             little endian
 *
 * Requests carry status 0; replies echo cmd | 0x80 and seq, and carry a status
 * from enum rpc_status. Pure C99, no allocation, no I/O. */
#ifndef MAMBA_TVM_RPC_FRAME_H_
#define MAMBA_TVM_RPC_FRAME_H_

#include <stddef.h>
#include <stdint.h>

#define RPC_PROTOCOL_VERSION 1u
#define RPC_MAX_PAYLOAD 1024u
#define RPC_HEADER_BYTES 4u
#define RPC_CRC_BYTES 2u
#define RPC_MIN_FRAME (RPC_HEADER_BYTES + RPC_CRC_BYTES)
#define RPC_MAX_FRAME (RPC_HEADER_BYTES + RPC_MAX_PAYLOAD + RPC_CRC_BYTES)
/* Worst-case COBS size of n bytes (without the delimiter). */
#define RPC_COBS_MAX(n) ((n) + (n) / 254u + 1u)
#define RPC_MAX_ENCODED RPC_COBS_MAX(RPC_MAX_FRAME)

#define RPC_REPLY_FLAG 0x80u
#define RPC_CMD_UNKNOWN 0x7Fu   /* cmd echoed when a damaged frame had none */
#define RPC_SEQ_UNKNOWN 0xFFFFu /* seq echoed when a damaged frame had none */
#define RPC_CRC_INIT 0xFFFFu

/* Reply status codes. 1-3 are framing errors (the request never reached a
 * command handler; its cmd/seq are echoed only as far as they could be read). */
enum rpc_status {
  RPC_OK = 0,
  RPC_ERR_BAD_CRC = 1,         /* CRC mismatch */
  RPC_ERR_BAD_FRAME = 2,       /* truncated (< 6 bytes) or invalid COBS */
  RPC_ERR_FRAME_TOO_LONG = 3,  /* more bytes than the receive buffer before a delimiter */
  RPC_ERR_UNKNOWN_COMMAND = 4, /* cmd not implemented */
  RPC_ERR_BAD_LENGTH = 5,      /* payload length wrong for the command */
  RPC_ERR_OUT_OF_RANGE = 6,    /* offset/length outside the buffer */
  RPC_ERR_NOT_READY = 7,       /* e.g. RUN before the input was written */
  RPC_ERR_BUSY = 8,            /* a request arrived while the model was running */
  RPC_ERR_UNSUPPORTED = 9      /* e.g. PROFILE in a build without TVMGEN_DEFAULT_PROFILE */
};

/* One parsed frame. payload points into the buffer it was parsed from. */
struct rpc_msg {
  uint8_t cmd;
  uint16_t seq;
  uint8_t status;
  uint16_t crc;
  const uint8_t *payload;
  size_t len;
};

/* CRC-16/CCITT-FALSE: start with crc = RPC_CRC_INIT. */
uint16_t rpc_crc16(const uint8_t *data, size_t n, uint16_t crc);

/* COBS-encode n bytes into out (no delimiter). Returns the encoded length, or
 * 0 when cap is too small (RPC_COBS_MAX(n) always suffices). */
size_t rpc_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* COBS-decode n bytes (no delimiter) into out; out may equal in. *out_len is
 * the number of bytes decoded, also on error. Returns RPC_OK or
 * RPC_ERR_BAD_FRAME (a 0x00 inside, a block running past the end, or cap). */
int rpc_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* Check a decoded frame and fill msg. cmd/seq/status are filled as far as the
 * frame holds them (else RPC_CMD_UNKNOWN / RPC_SEQ_UNKNOWN) even when the
 * frame is rejected. Returns RPC_OK, RPC_ERR_BAD_FRAME, RPC_ERR_FRAME_TOO_LONG
 * or RPC_ERR_BAD_CRC. */
int rpc_frame_parse(const uint8_t *frame, size_t n, struct rpc_msg *msg);

/* Complete a frame whose payload (len bytes) already sits at
 * raw + RPC_HEADER_BYTES: write the header and CRC into raw (capacity
 * RPC_MAX_FRAME), COBS-encode it into out and append the 0x00 delimiter.
 * Returns the bytes to send, or 0 if len > RPC_MAX_PAYLOAD or cap is short. */
size_t rpc_frame_finish(uint8_t *raw, uint8_t cmd, uint16_t seq, uint8_t status, size_t len, uint8_t *out,
                        size_t cap);

/* Stream receiver: push received bytes one at a time. */
#define RPC_RX_PENDING (-1)
struct rpc_rx {
  size_t len;
  uint8_t overflow;
  uint8_t buf[RPC_MAX_ENCODED];
};

void rpc_rx_reset(struct rpc_rx *rx);

/* Returns RPC_RX_PENDING until a delimiter ends a non-empty frame, then the
 * frame's status (RPC_OK or a framing error) with msg filled as in
 * rpc_frame_parse. msg->payload stays valid until the next push. Empty frames
 * (consecutive delimiters) are idle filler and ignored. */
int rpc_rx_push(struct rpc_rx *rx, uint8_t byte, struct rpc_msg *msg);

#endif /* MAMBA_TVM_RPC_FRAME_H_ */
