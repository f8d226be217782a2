"""Code generation: TIR kernels to plain C, and the AOT emitter of model.c / model.h."""

#: the promise the generated C keeps on every compiler; every build and check of it uses these
#: (-Wcast-qual: kernels take what they only read as const, so no call casts const away)
STRICT_C99 = ["-std=c99", "-Wall", "-Wextra", "-Wcast-qual", "-Werror"]

#: where the arena lives (--arena): a static array in model.c, or the application's, passed to every call
ARENAS = ("static", "caller")
