"""Code generation: TIR kernels to plain C, and the AOT emitter of model.c / model.h."""
