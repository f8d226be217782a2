"""mamba_tvm: an ahead-of-time compiler from trained Mamba models to runtime-free C for MCUs."""
__version__ = "0.1.0"


def compile(module, example_inputs, **options):  # noqa: A001  (named like torch.compile)
    """mamba_tvm.api.compile: the module, (1, T, features) example input, target=..., out=..., ..."""
    from .api import compile as _compile

    return _compile(module, example_inputs, **options)


def swap_mixers(module):
    """A copy of `module` with Hugging Face MambaMixer / mamba_ssm Mamba layers replaced by
    mamba_tvm.nn.Mamba (same weights): what to torch.export before saving a .pt2, since their own
    forwards (CUDA kernels, Python loops over time) do not export as one scan."""
    import copy

    from .frontend.mixers import swap_mixers as _swap

    return _swap(copy.deepcopy(module).eval())
