/* The generated model as an RPC target (see rpc_model.h): buffers, run, profiling hooks.
 *
 * Profiling: only with -DTVMGEN_DEFAULT_PROFILE (on the model sources too) does model.c
 * call the hooks below around each kernel call; each call's ticks are read from the same
 * timer as the whole run (rpc_model_ticks), so the per-call ticks add up to the run's
 * ticks less the hooks' own few instructions per call. Without the define the hooks
 * compile to nothing in model.c, this file defines none, and PROFILE replies UNSUPPORTED:
 * the plain build pays nothing for profiling. */
#include "rpc_model.h"

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "rpc_model_info.h"

/* Placement macros, as model.c has them: empty unless the build sets them (the Zephyr
 * app puts the recurrent state in the arena's RAM region). */
#ifndef TVMGEN_DEFAULT_STATE_SECTION
#define TVMGEN_DEFAULT_STATE_SECTION
#endif

static const uint32_t k_input_shape[RPC_INPUT_NDIM] = RPC_INPUT_SHAPE;
static const uint32_t k_output_shape[RPC_OUTPUT_NDIM] = RPC_OUTPUT_SHAPE;

/* rpc_model_info.h must describe this model.h. */
typedef char rpc_output_matches_model[(RPC_OUTPUT_ELEMENTS == TVMGEN_DEFAULT_OUTPUT_ELEMS) ? 1 : -1];

static float g_input[RPC_INPUT_ELEMENTS];
static float g_output[TVMGEN_DEFAULT_OUTPUT_ELEMS];

#ifdef TVMGEN_DEFAULT_STREAM
/* A streaming model (init/step/finish): RUN feeds the T frames of the input. */
typedef char rpc_input_is_whole_frames[(RPC_INPUT_ELEMENTS % TVMGEN_DEFAULT_FRAME_ELEMS == 0) ? 1 : -1];
static struct tvmgen_default_state g_state TVMGEN_DEFAULT_STATE_SECTION;

static int32_t run_model(void) {
  struct tvmgen_default_outputs outputs;
  uint32_t t;
  outputs.output = g_output;
  tvmgen_default_init(&g_state);
  for (t = 0u; t < (uint32_t)(RPC_INPUT_ELEMENTS / TVMGEN_DEFAULT_FRAME_ELEMS); t++) {
    int32_t rc = tvmgen_default_step(g_input + t * TVMGEN_DEFAULT_FRAME_ELEMS, &g_state);
    if (rc != 0) return rc;
  }
  return tvmgen_default_finish(&g_state, &outputs);
}
#else
/* A sequence model (layer by layer or time-step fused): one tvmgen_default_run. */
typedef char rpc_input_matches_model[(RPC_INPUT_ELEMENTS == TVMGEN_DEFAULT_INPUT_ELEMS) ? 1 : -1];

static int32_t run_model(void) {
  struct tvmgen_default_inputs inputs;
  struct tvmgen_default_outputs outputs;
  inputs.input = g_input;
  outputs.output = g_output;
  return tvmgen_default_run(&inputs, &outputs);
}
#endif

#ifdef TVMGEN_DEFAULT_PROFILE
/* Accumulated: a time-step fused or streaming model calls its step kernels once per step. */
static uint32_t g_call_ticks[TVMGEN_DEFAULT_NUM_CALLS];
static uint32_t g_call_counts[TVMGEN_DEFAULT_NUM_CALLS];
static uint32_t g_call_start;

void tvmgen_default_profile_begin(int32_t call);
void tvmgen_default_profile_end(int32_t call);

void tvmgen_default_profile_begin(int32_t call) {
  (void)call;
  g_call_start = rpc_model_ticks();
}

void tvmgen_default_profile_end(int32_t call) {
  uint32_t now = rpc_model_ticks();
  if (call >= 0 && call < (int32_t)TVMGEN_DEFAULT_NUM_CALLS) {
    g_call_ticks[call] += now - g_call_start;
    g_call_counts[call] += 1u;
  }
}
#define CALL_TICKS g_call_ticks
#define CALL_COUNTS g_call_counts
#else
#define CALL_TICKS NULL
#define CALL_COUNTS NULL
#endif

void rpc_model_target(struct rpc_target *t) {
  t->model_name = RPC_MODEL_NAME;
  t->fingerprint = TVMGEN_DEFAULT_FINGERPRINT;
  t->input = g_input;
  t->input_count = RPC_INPUT_ELEMENTS;
  t->input_shape = k_input_shape;
  t->input_ndim = RPC_INPUT_NDIM;
  t->output = g_output;
  t->output_count = TVMGEN_DEFAULT_OUTPUT_ELEMS;
  t->output_shape = k_output_shape;
  t->output_ndim = RPC_OUTPUT_NDIM;
  t->arena_bytes = TVMGEN_DEFAULT_WORKSPACE_SIZE;
  t->num_calls = TVMGEN_DEFAULT_NUM_CALLS;
  t->call_names = tvmgen_default_call_names;
  t->run = run_model;
  t->call_ticks = CALL_TICKS;
  t->call_counts = CALL_COUNTS;
  t->ticks = rpc_model_ticks;
  t->before_run = NULL;
  t->timer_hz = 0u;
  t->units_per_tick = 1u;
  t->unit = RPC_UNIT_CYCLES;
}
