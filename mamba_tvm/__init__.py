"""mamba_tvm: an ahead-of-time compiler from trained Mamba models to runtime-free C for MCUs."""
__version__ = "0.1.0"
