/* Runs the generated model once on a baked-in sample input and prints the
 * result in a line protocol mamba_tvm.device.qemu parses:
 *
 *   LOGIT <i> <8 hex digits: IEEE-754 bits of output[i]>   (one per output)
 *   TICKS <TIMER0 ticks spent in the model (run, or init + every step + finish)>
 *   STACK_AT_CALL <bytes of stack in use just before the call>
 *   STACK_USED <high-water mark in bytes, harness + model>
 *   STACK_RESERVED <bytes reserved by the linker script>
 *   RC <tvmgen_default_run return value>
 *   DONE
 *
 * Outputs are printed as raw bits so the host compares them bit-exactly. */
#include <stdint.h>

#include "board.h"
#include "model.h"
#include "app_arena.h"
#include "sample_input.h"

#ifdef TVMGEN_DEFAULT_STREAM
/* A streaming model (init/step/finish): the sample is T whole feature frames. */
#define HARNESS_INPUT_SIZE SAMPLE_INPUT_COUNT
typedef char sample_input_is_whole_frames[(SAMPLE_INPUT_COUNT % TVMGEN_DEFAULT_FRAME_ELEMS == 0) ? 1 : -1];
static struct tvmgen_default_state g_state;

static int32_t run_model(float *input, struct tvmgen_default_outputs *outputs) {
  uint32_t t;
  tvmgen_default_init(&g_state);
  for (t = 0u; t < (uint32_t)(SAMPLE_INPUT_COUNT / TVMGEN_DEFAULT_FRAME_ELEMS); t++) {
    int32_t rc = tvmgen_default_step(input + t * TVMGEN_DEFAULT_FRAME_ELEMS, &g_state WORKSPACE_POOLS);
    if (rc != 0) return rc;
  }
  return tvmgen_default_finish(&g_state, outputs WORKSPACE_POOLS);
}
#else
/* sample_input.h must hold exactly one model input. */
#define HARNESS_INPUT_SIZE TVMGEN_DEFAULT_INPUT_ELEMS
typedef char sample_input_size_matches_model[(SAMPLE_INPUT_COUNT == TVMGEN_DEFAULT_INPUT_ELEMS) ? 1 : -1];

static int32_t run_model(float *input, struct tvmgen_default_outputs *outputs) {
  struct tvmgen_default_inputs inputs;
  inputs.input = input;
  return tvmgen_default_run(&inputs, outputs WORKSPACE_POOLS);
}
#endif

static float g_input[HARNESS_INPUT_SIZE];
static float g_output[TVMGEN_DEFAULT_OUTPUT_ELEMS];

/* A quiet NaN with a recognisable payload: an output the model never wrote
 * shows up on the host as 7fc0dead rather than as a plausible 0.0. */
#define UNWRITTEN_OUTPUT_BITS 0x7FC0DEADu

typedef union {
  float f;
  uint32_t u;
} float_bits;

static void print_line_u32(const char *key, uint32_t v) {
  board_puts(key);
  board_putc(' ');
  board_put_u32(v);
  board_putc('\n');
}

int main(void) {
  struct tvmgen_default_outputs outputs;
  float_bits bits;
  uint32_t i, ticks, stack_at_call, stack_used;
  int32_t rc;

  for (i = 0u; i < (uint32_t)HARNESS_INPUT_SIZE; i++) g_input[i] = sample_input[i];
  bits.u = UNWRITTEN_OUTPUT_BITS;
  for (i = 0u; i < (uint32_t)TVMGEN_DEFAULT_OUTPUT_ELEMS; i++) g_output[i] = bits.f;

  outputs.output = g_output;

  stack_at_call = board_stack_depth_now();
  board_timer_start();
  rc = run_model(g_input, &outputs);
  ticks = board_timer_ticks();
  stack_used = board_stack_used(); /* before printing adds its own frames */

  for (i = 0u; i < (uint32_t)TVMGEN_DEFAULT_OUTPUT_ELEMS; i++) {
    bits.f = g_output[i];
    board_puts("LOGIT ");
    board_put_u32(i);
    board_putc(' ');
    board_put_hex32(bits.u);
    board_putc('\n');
  }
  print_line_u32("TICKS", ticks);
  print_line_u32("STACK_AT_CALL", stack_at_call);
  print_line_u32("STACK_USED", stack_used);
  print_line_u32("STACK_RESERVED", board_stack_reserved());
  board_puts("RC ");
  board_put_i32(rc);
  board_putc('\n');
  board_puts("DONE\n");
  board_flush();
  return 0;
}
