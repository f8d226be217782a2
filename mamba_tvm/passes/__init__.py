"""Our own named passes, each a tvm.transform pass in its own module."""
from .block_matvec import BlockMatvec
from .contract_fma import ContractFMA
from .fast_math import LowerFastMath
from .float_minmax import FloatMinMax
from .fuse_epilogues import FuseEpilogues
from .int8_matvec import SelectInt8Matvec
from .kernel_workspace import HoistKernelTemporaries, kernel_stack_bytes
from .make_plain_c_api import MakePlainCAPI
from .scan_schedule import ScheduleScan
from .select_constants import SelectFloatConstantsFromTable
from .unroll_reductions import UnrollReductions

__all__ = ["BlockMatvec", "ContractFMA", "FloatMinMax", "FuseEpilogues", "LowerFastMath", "HoistKernelTemporaries", "MakePlainCAPI",
           "ScheduleScan", "SelectFloatConstantsFromTable", "SelectInt8Matvec", "UnrollReductions",
           "kernel_stack_bytes"]
