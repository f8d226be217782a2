"""Front end: read a checkpoint, validate it once into a ModelSpec, build the PyTorch reference."""
from .checkpoint import ModelSpec, load_checkpoint, spec_from_state_dict
from .reference import TinyMamba, reference_logits

__all__ = ["ModelSpec", "load_checkpoint", "spec_from_state_dict", "TinyMamba", "reference_logits"]
