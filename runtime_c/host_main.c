/* Host harness: reads the input floats from argv[1], runs the model, writes the outputs
 * to argv[2]. Used to check the generated C against PyTorch before touching a device.
 * A streaming model (init/step/finish) is fed the file frame by frame, any length. */
#include <stdio.h>
#include "model.h"
#include "app_arena.h"

static float output_buf[TVMGEN_DEFAULT_OUTPUT_ELEMS];

#ifdef TVMGEN_DEFAULT_STREAM
static int run_file(FILE* f, struct tvmgen_default_outputs* outputs) {
  static float frame[TVMGEN_DEFAULT_FRAME_ELEMS];
  static struct tvmgen_default_state state;
  size_t n;
  tvmgen_default_init(&state);
  while ((n = fread(frame, sizeof(float), TVMGEN_DEFAULT_FRAME_ELEMS, f)) == TVMGEN_DEFAULT_FRAME_ELEMS) {
    if (tvmgen_default_step(frame, &state WORKSPACE_POOLS) != 0) return 5;
  }
  if (n != 0 || state.steps == 0) return 4; /* a partial frame, or none */
  return tvmgen_default_finish(&state, outputs WORKSPACE_POOLS) != 0 ? 5 : 0;
}
#else
static int run_file(FILE* f, struct tvmgen_default_outputs* outputs) {
  static float input_buf[TVMGEN_DEFAULT_INPUT_ELEMS + 1];
  struct tvmgen_default_inputs inputs = {input_buf};
  if (fread(input_buf, sizeof(float), TVMGEN_DEFAULT_INPUT_ELEMS + 1, f) != TVMGEN_DEFAULT_INPUT_ELEMS) return 4;
  return tvmgen_default_run(&inputs, outputs WORKSPACE_POOLS) != 0 ? 5 : 0;
}
#endif

int main(int argc, char** argv) {
  struct tvmgen_default_outputs outputs = {output_buf};
  size_t n;
  int rc;
  FILE* f;
  if (argc != 3) return 2;
  f = fopen(argv[1], "rb");
  if (!f) return 3;
  rc = run_file(f, &outputs);
  fclose(f);
  if (rc != 0) return rc;
  f = fopen(argv[2], "wb");
  if (!f) return 6;
  n = fwrite(output_buf, sizeof(float), TVMGEN_DEFAULT_OUTPUT_ELEMS, f);
  fclose(f);
  return n == TVMGEN_DEFAULT_OUTPUT_ELEMS ? 0 : 7;
}
