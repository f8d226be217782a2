/* The device side of host-driven RPC: receives frames, runs commands on one model, replies.
 *
 * Why model-agnostic: the server only sees a struct rpc_target (buffers, run
 * function, timer, names), filled by the firmware's main from the generated
 * model.h. So the same server builds for QEMU, Zephyr boards and the host fuzzer.
 * Single-threaded, no allocation: all state lives in struct rpc_server (~3.2 KB).
 *
 * Commands (payloads little endian; docs/rpc.md has the byte layouts):
 *   HELLO        -> magic "MTVM", version, max payload, flags, frame counters
 *   INFO         -> element counts, shapes, arena bytes, timer, unit, #calls, name
 *   CALL_NAMES   first            -> kernel call names from index `first`
 *   WRITE_INPUT  offset, bytes    -> input bytes [offset, offset + n)
 *   RUN                           -> rc, ticks
 *   READ_OUTPUT  offset, length   -> output bytes
 *   PROFILE                       -> rc, ticks, sum of per-call ticks, #calls
 *   READ_PROFILE first            -> per-call (ticks, invocations) from index `first`
 *   RESET                         -> clears input, output and profile state
 * A request repeated with the same cmd, seq and CRC (the host's retry after a
 * lost reply) gets the cached reply again: RUN is never executed twice. */
#ifndef MAMBA_TVM_RPC_SERVER_H_
#define MAMBA_TVM_RPC_SERVER_H_

#include <stddef.h>
#include <stdint.h>

#include "rpc_frame.h"
#include "rpc_transport.h"

enum rpc_cmd {
  RPC_CMD_HELLO = 0x01,
  RPC_CMD_INFO = 0x02,
  RPC_CMD_CALL_NAMES = 0x03,
  RPC_CMD_WRITE_INPUT = 0x10,
  RPC_CMD_RUN = 0x11,
  RPC_CMD_READ_OUTPUT = 0x12,
  RPC_CMD_PROFILE = 0x13,
  RPC_CMD_READ_PROFILE = 0x14,
  RPC_CMD_RESET = 0x1F
};

enum rpc_unit { RPC_UNIT_INSTRUCTIONS = 0, RPC_UNIT_CYCLES = 1 };

#define RPC_MAX_NDIM 8u
#define RPC_FLAG_PROFILE 0x01u    /* HELLO flags: PROFILE is available */
#define RPC_FLAG_BIG_ENDIAN 0x02u /* HELLO flags: tensors are big-endian float32 */

/* What the server serves. Tensors are float32 (the generated API's type). */
struct rpc_target {
  const char *model_name;
  const char *fingerprint; /* hash of the weights and the plan (model.h TVMGEN_DEFAULT_FINGERPRINT) */
  float *input;
  uint32_t input_count; /* elements */
  const uint32_t *input_shape;
  uint8_t input_ndim;
  float *output;
  uint32_t output_count;
  const uint32_t *output_shape;
  uint8_t output_ndim;
  uint32_t arena_bytes;
  uint16_t num_calls;
  const char *const *call_names; /* num_calls entries */
  int32_t (*run)(void);          /* one inference: input -> output; 0 = success */
  /* Per-call ticks and invocation counts that the firmware's profiling hooks
   * accumulate during run() (a time-step fused model calls its step kernels
   * once per time step); NULL when profiling is compiled out (PROFILE then
   * replies UNSUPPORTED). num_calls entries each; both or neither. */
  uint32_t *call_ticks;
  uint32_t *call_counts;
  uint32_t (*ticks)(void); /* free-running 32-bit up-counter */
  /* Called right before the start time of each RUN/PROFILE is read; NULL for none.
   * The QEMU firmware aligns to a timer tick here so that runs time identically. */
  void (*before_run)(void);
  uint32_t timer_hz;
  uint32_t units_per_tick; /* instructions or cycles per tick */
  uint8_t unit;            /* enum rpc_unit */
};

struct rpc_server {
  struct rpc_transport io;
  const struct rpc_target *target;
  struct rpc_rx rx;
  uint8_t raw[RPC_MAX_FRAME];       /* the reply being built */
  uint8_t tx[RPC_MAX_ENCODED + 1u]; /* the last command reply, encoded (the retry cache) */
  size_t tx_len;
  uint8_t err_tx[RPC_COBS_MAX(RPC_MIN_FRAME + 8u) + 1u]; /* framing-error replies */
  uint8_t cached, last_cmd;
  uint16_t last_seq, last_crc;
  uint8_t input_ready, output_ready, profile_ready, running;
  uint32_t frames_ok, frames_bad;
};

void rpc_server_init(struct rpc_server *s, const struct rpc_transport *io, const struct rpc_target *target);

/* Feed received bytes; replies are written to the transport as frames complete.
 * Returns 0, or < 0 when a write failed. */
int rpc_server_feed(struct rpc_server *s, const uint8_t *bytes, size_t n);

/* One blocking read from the transport, then feed. < 0: the transport closed. */
int rpc_server_poll(struct rpc_server *s);

/* Serve until the transport closes (never, on a UART). */
void rpc_server_run(struct rpc_server *s);

#endif /* MAMBA_TVM_RPC_SERVER_H_ */
