"""Front end: read a model (checkpoint, module, exported program, ONNX), validate it, keep the
user's module as the reference."""
from .checkpoint import ModelSpec, load_checkpoint, spec_from_state_dict
from .reference import as_module, reference_logits

__all__ = ["ModelSpec", "load_checkpoint", "spec_from_state_dict", "as_module", "reference_logits"]
