"""--module-name: the prefix of every C name a model exports, as microTVM's `tvmc --module-name`.

Why: two models linked into one firmware (keyword spotting and activity recognition on the
same MCU) must not share a symbol or a macro. Everything in the generated C is `static` except
the API (tvmgen_<name>_run / init / step / finish, the call-name table, the kernels) and the
macros of model.h, and those all carry the prefix. The emitter writes microTVM's default names
(tvmgen_default_*, TVMGEN_DEFAULT_*); a module name substitutes that prefix in every C and
build file mamba_tvm writes for the model: its sources and the harnesses and apps around them.
"""
from __future__ import annotations

import re

from ..errors import CompileError

DEFAULT = "default"
_VALID = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
# the default prefix as a whole name or the start of one (also after -D in compiler flags)
_PREFIX = re.compile(r"(?:(?<=-D)|(?<![A-Za-z0-9_]))(tvmgen_default|TVMGEN_DEFAULT)(?![A-Za-z0-9])")


def check_module_name(name: str) -> str:
    """The name, or a CompileError saying what a module name may be."""
    if not _VALID.match(name or ""):
        raise CompileError(f"--module-name '{name}': use 1-32 lower-case letters, digits or '_', starting with a "
                           "letter (it becomes the C prefix tvmgen_<name>_ and TVMGEN_<NAME>_)")
    return name


def api_prefix(name: str = DEFAULT) -> str:
    """The prefix of the model's C functions: tvmgen_<name>."""
    return f"tvmgen_{name}"


def rename(text: str, name: str = DEFAULT) -> str:
    """text with microTVM's default prefix replaced by the module's (unchanged for "default")."""
    if name == DEFAULT:
        return text
    return _PREFIX.sub(lambda m: f"tvmgen_{name}" if m.group(1).islower() else f"TVMGEN_{name.upper()}", text)
