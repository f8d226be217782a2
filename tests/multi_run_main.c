/* Test harness: runs the generated model on several inputs in ONE process and writes each
 * input's logits. A model that carries anything from one inference into the next (a state
 * that init does not reset, an arena tensor read before it is written) gives different
 * logits here than in a fresh process per input.
 *
 * Sizes come from the compiler command line (not from model.h, whose size macros are the
 * product's own): -DMR_FRAME=<floats per frame> -DMR_FRAMES=<frames per input>
 * -DMR_OUTPUT=<logits>, and -DMR_STREAM for an init/step/finish build.
 * Usage: multi_run <inputs.bin> <count> <outputs.bin>
 */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

#define MR_INPUT (MR_FRAME * MR_FRAMES)

static float input_buf[MR_INPUT];
static float output_buf[MR_OUTPUT];

static int infer(void) {
  struct tvmgen_default_outputs outputs;
  outputs.output = output_buf;
#ifdef MR_STREAM
  {
    static struct tvmgen_default_state state;
    int t;
    tvmgen_default_init(&state);
    for (t = 0; t < MR_FRAMES; ++t) {
      if (tvmgen_default_step(input_buf + t * MR_FRAME, &state) != 0) return 1;
    }
    return tvmgen_default_finish(&state, &outputs) != 0;
  }
#else
  {
    struct tvmgen_default_inputs inputs;
    inputs.input = input_buf;
    return tvmgen_default_run(&inputs, &outputs) != 0;
  }
#endif
}

int main(int argc, char** argv) {
  FILE *in, *out;
  long i, count;
  if (argc != 4) return 2;
  count = strtol(argv[2], NULL, 10);
  in = fopen(argv[1], "rb");
  out = fopen(argv[3], "wb");
  if (!in || !out) return 3;
  for (i = 0; i < count; ++i) {
    if (fread(input_buf, sizeof(float), MR_INPUT, in) != MR_INPUT) return 4;
    if (infer() != 0) return 5;
    if (fwrite(output_buf, sizeof(float), MR_OUTPUT, out) != MR_OUTPUT) return 6;
  }
  fclose(in);
  return fclose(out) != 0 ? 7 : 0;
}
