"""`--emit mlf`: the compiled model as a Model Library Format tarball, as microTVM v0.18 wrote it.

Why: tools and firmware build systems made for microTVM (its project API, Zephyr and Arduino
templates, CI scripts that read metadata.json) take an MLF archive. Layout (MLF version 7,
python/tvm/micro/model_library_format.py in TVM v0.18, AOT executor, C interface API; <m> is the
module name, `default` unless --module-name):

    metadata.json                 version 7; modules.<m>: executors ["aot"], style
                                  "full-model", memory.functions.main (workspace, constants and
                                  io sizes, inputs/outputs with size and dtype),
                                  memory.functions.operator_functions (each kernel's workspace),
                                  target; mamba_tvm adds memory.pools (arena, state)
    codegen/host/src/<m>_lib0.c, <m>_lib1.c      the generated C (model.c, model_kernels.c)
    codegen/host/include/tvmgen_<m>.h            the C interface (model.h), and the
                                  headers the sources include
    parameters/<m>.params         the weights as stored, in TVM's param-dict format
                                  (tvm.runtime.load_param_dict reads it back)
    src/<m>.plan.json             the planned program (TVM 0.27 has no Relay text to put here)

The weights are also compiled into <m>_lib0.c (no loading at run time); the params file
is for tools that inspect them.
"""
from __future__ import annotations

import datetime
import io
import json
import tarfile
from pathlib import Path

import numpy as np

from ..codegen.module_name import api_prefix, rename

MLF_VERSION = 7
DEVICE_CPU = 1  # kDLCPU


def _target_string(board) -> str:
    return f"c -keys=arm_cpu,cpu -mcpu={board.core}" if board.core.startswith("cortex") else f"c -mcpu={board.core}"


def metadata(compiled, board) -> dict:
    """metadata.json of MLF version 7 for the model: one module, `default` or the --module-name."""
    module_name, prefix = compiled.module_name, api_prefix(compiled.module_name)
    main = compiled.programs.get("main") or compiled.programs["step"]
    inputs = {n: {"size": int(main.tensors[n].nbytes), "dtype": main.tensors[n].dtype} for n in main.inputs}
    last = compiled.programs.get("main") or compiled.programs["finish"]
    outputs = {n: {"size": int(last.tensors[n].nbytes), "dtype": last.tensors[n].dtype} for n in last.outputs}
    if compiled.mode == "sequence" and "step" in compiled.programs:  # the whole (1, T, F) input, stepped over
        frame = next(iter(inputs.values()))
        inputs = {"input": {"size": frame["size"] * compiled.seq_len, "dtype": frame["dtype"]}}
    operator_functions = []
    for name, program in compiled.programs.items():
        for kernel in dict.fromkeys(c.kernel for c in program.calls):
            ws = sum(t.nbytes for t in program.arena_tensors()
                     if t.producer == kernel and t.name.startswith(f"{'s_' if name == 'step' else 'f_' if name == 'finish' else ''}{kernel}_"))
            operator_functions.append({"function_name": f"{prefix}_{kernel}",
                                       "workspace": [{"device": DEVICE_CPU, "workspace_size_bytes": int(ws)}]})
    pools = [{"pool_name": f"{prefix}_arena", "size_bytes": int(compiled.arena_bytes),
              "purpose": "activations and kernel workspaces, reused across calls (the workspace)"}]
    if compiled.state_bytes:
        pools.append({"pool_name": f"{prefix}_state", "size_bytes": int(compiled.state_bytes),
                      "purpose": "recurrent state kept across time steps"})
    module = {
        "model_name": module_name,
        "export_datetime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
        "executors": ["aot"],
        "style": "full-model",
        "target": [_target_string(board)],
        "memory": {
            "functions": {
                "main": [{"device": DEVICE_CPU,
                          "workspace_size_bytes": int(compiled.arena_bytes),
                          "constants_size_bytes": int(compiled.weights_bytes),
                          "io_size_bytes": int(sum(v["size"] for v in inputs.values())
                                               + sum(v["size"] for v in outputs.values())),
                          "inputs": inputs, "outputs": outputs}],
                "operator_functions": operator_functions,
            },
            "pools": pools,
        },
        "mamba_tvm": {"mode": compiled.mode, "fusion": compiled.fusion, "weights": compiled.weights,
                      "seq_len": compiled.seq_len, "fingerprint": compiled.fingerprint},
    }
    return {"version": MLF_VERSION, "modules": {module_name: module}}


def params(compiled) -> bytes:
    """The constants under their C names, in TVM's param-dict format."""
    import tvm

    tensors = {}
    for program in compiled.programs.values():
        for t in program.tensors.values():
            if t.kind == "const":
                tensors[t.name] = tvm.runtime.tensor(np.ascontiguousarray(t.value))
    return bytes(tvm.runtime.save_param_dict(tensors))


def mlf_members(compiled, board) -> dict[str, bytes]:
    """Archive path -> bytes."""
    module_name = compiled.module_name
    c_files = [n for n in compiled.sources if n.endswith(".c")]
    order = sorted(c_files, key=lambda n: (n != "model.c", n))  # lib0 holds the entry point, like microTVM
    members = {f"./codegen/host/src/{module_name}_lib{i}.c": compiled.sources[n].encode() for i, n in enumerate(order)}
    for name, text in compiled.sources.items():
        if name.endswith(".h"):
            members[f"./codegen/host/include/{name}"] = text.encode()
    members[f"./codegen/host/include/{api_prefix(module_name)}.h"] = rename(
        "/* MLF interface header: the generated model.h (tvmgen_default_run, sizes). */\n"
        "#include \"model.h\"\n", module_name).encode()
    members["./metadata.json"] = json.dumps(metadata(compiled, board), indent=2, sort_keys=True).encode()
    members[f"./parameters/{module_name}.params"] = params(compiled)
    members[f"./src/{module_name}.plan.json"] = json.dumps(compiled.memory_report(), indent=1).encode()
    return members


def write_mlf(path: Path, compiled, board) -> Path:
    """Write the tarball (uncompressed tar, like microTVM; owner root, as microTVM resets it)."""
    members = mlf_members(compiled, board)
    with tarfile.open(path, "w") as tar:
        dirs = {"."} | {"./" + str(parent) for m in members for parent in Path(m[2:]).parents if str(parent) != "."}
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            info.uname = info.gname = "root"
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return path
