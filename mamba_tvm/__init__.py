"""mamba_tvm: an ahead-of-time compiler from trained Mamba models to runtime-free C for MCUs."""
__version__ = "0.1.0"


def compile(module, example_inputs, **options):  # noqa: A001  (named like torch.compile)
    """mamba_tvm.api.compile: the module, (1, T, features) example input, target=..., out=..., ..."""
    from .api import compile as _compile

    return _compile(module, example_inputs, **options)
