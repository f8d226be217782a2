/* The generated model as an RPC target: input/output buffers, one inference, and the
 * profiling hooks, shared by every RPC firmware (QEMU mps2-an500, the Zephyr app).
 *
 * Why a separate file: what differs between firmwares is only the timer and the
 * transport; how a model is run (tvmgen_default_run, or init/step/finish over the
 * T frames of the input for a streaming model) and how per-call ticks are counted
 * is the same everywhere. Portable C99: model.h and rpc_model_info.h, no board code.
 *
 * The firmware's main:
 *   - defines rpc_model_ticks(): its free-running 32-bit up-counter; the profiling
 *     hooks read it around every kernel call (with -DTVMGEN_DEFAULT_PROFILE);
 *   - calls rpc_model_target(&t), then sets t.before_run, t.timer_hz,
 *     t.units_per_tick and t.unit (and may replace t.ticks by an equivalent counter). */
#ifndef MAMBA_TVM_RPC_MODEL_H_
#define MAMBA_TVM_RPC_MODEL_H_

#include <stdint.h>

#include "rpc_server.h"

/* Provided by the firmware: the timer every RUN and PROFILE is measured with. */
uint32_t rpc_model_ticks(void);

/* Fills the model's part of *t: name, buffers, shapes, arena bytes, call names, run,
 * call_ticks/call_counts (NULL without -DTVMGEN_DEFAULT_PROFILE) and ticks =
 * rpc_model_ticks. Leaves before_run NULL, timer_hz 0, units_per_tick 1, unit cycles. */
void rpc_model_target(struct rpc_target *t);

#endif /* MAMBA_TVM_RPC_MODEL_H_ */
