/* Host harness: reads the input floats from argv[1], runs the model, writes the outputs
 * to argv[2]. Used to check the generated C against PyTorch before touching a device.
 * A streaming model (init/step/finish) is fed the file frame by frame, any length. */
#include <stdio.h>
#include "model.h"

#ifdef TVMGEN_DEFAULT_STREAM
#define MAX_INPUT (TVMGEN_DEFAULT_FRAME_ELEMS * 4096)
#else
#define MAX_INPUT TVMGEN_DEFAULT_INPUT_ELEMS
#endif

static float input_buf[MAX_INPUT];
static float output_buf[TVMGEN_DEFAULT_OUTPUT_ELEMS];

int main(int argc, char** argv) {
  struct tvmgen_default_outputs outputs = {output_buf};
  size_t n;
  FILE* f;
  if (argc != 3) return 2;
  f = fopen(argv[1], "rb");
  if (!f) return 3;
  n = fread(input_buf, sizeof(float), MAX_INPUT, f);
  fclose(f);
#ifdef TVMGEN_DEFAULT_STREAM
  {
    static struct tvmgen_default_state state;
    size_t t;
    if (n == 0 || n % TVMGEN_DEFAULT_FRAME_ELEMS != 0) return 4;
    tvmgen_default_init(&state);
    for (t = 0; t < n / TVMGEN_DEFAULT_FRAME_ELEMS; ++t) {
      if (tvmgen_default_step(input_buf + t * TVMGEN_DEFAULT_FRAME_ELEMS, &state) != 0) return 5;
    }
    if (tvmgen_default_finish(&state, &outputs) != 0) return 5;
  }
#else
  {
    struct tvmgen_default_inputs inputs = {input_buf};
    if (n != TVMGEN_DEFAULT_INPUT_ELEMS) return 4;
    if (tvmgen_default_run(&inputs, &outputs) != 0) return 5;
  }
#endif
  f = fopen(argv[2], "wb");
  if (!f) return 6;
  n = fwrite(output_buf, sizeof(float), TVMGEN_DEFAULT_OUTPUT_ELEMS, f);
  fclose(f);
  return n == TVMGEN_DEFAULT_OUTPUT_ELEMS ? 0 : 7;
}
