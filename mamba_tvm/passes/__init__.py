"""Our own named passes, each a tvm.transform pass in its own module."""
from .fuse_epilogues import FuseEpilogues
from .kernel_workspace import HoistKernelTemporaries, kernel_stack_bytes
from .make_plain_c_api import MakePlainCAPI
from .select_constants import SelectFloatConstantsFromTable
from .unroll_reductions import UnrollReductions

__all__ = ["FuseEpilogues", "HoistKernelTemporaries", "MakePlainCAPI", "SelectFloatConstantsFromTable",
           "UnrollReductions", "kernel_stack_bytes"]
