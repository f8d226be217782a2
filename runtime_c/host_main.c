/* Host harness: reads the input floats from argv[1], runs the model, writes the outputs
 * to argv[2]. Used to check the generated C against PyTorch before touching a device. */
#include <stdio.h>
#include "model.h"

static float input_buf[TVMGEN_DEFAULT_INPUT_SIZE];
static float output_buf[TVMGEN_DEFAULT_OUTPUT_SIZE];

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  FILE* f = fopen(argv[1], "rb");
  if (!f) return 3;
  size_t n = fread(input_buf, sizeof(float), TVMGEN_DEFAULT_INPUT_SIZE, f);
  fclose(f);
  if (n != TVMGEN_DEFAULT_INPUT_SIZE) return 4;
  struct tvmgen_default_inputs inputs = {input_buf};
  struct tvmgen_default_outputs outputs = {output_buf};
  if (tvmgen_default_run(&inputs, &outputs) != 0) return 5;
  f = fopen(argv[2], "wb");
  if (!f) return 6;
  n = fwrite(output_buf, sizeof(float), TVMGEN_DEFAULT_OUTPUT_SIZE, f);
  fclose(f);
  return n == TVMGEN_DEFAULT_OUTPUT_SIZE ? 0 : 7;
}
