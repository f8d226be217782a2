"""`python -m mamba_tvm.export --model M --onnx out.onnx`: a model as ONNX, Mamba operators as
`mamba_tvm` custom-domain nodes (frontend/onnx_ops.py), everything else standard ONNX.

The file goes back into the compiler with `python -m mamba_tvm.build --model out.onnx`, and
runs in onnx's reference evaluator with the node definitions from frontend/onnx_ops.py.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .driver import DEFAULT_MODEL
from .errors import CompileError, argument_parser, exit_with, run_cli


def export_onnx(module, example_input, path: Path) -> Path:
    """torch.onnx.export (the dynamo exporter) with the Mamba custom ops translated to nodes."""
    import onnxscript
    import torch

    import relay_ops  # noqa: F401  (registers torch.ops.mamba.*, also for models without a Mamba layer)
    from .frontend.onnx_ops import DOMAIN, VERSION, register_schemas
    from .frontend.reference import inference_mode

    register_schemas()
    mamba = onnxscript.values.Opset(DOMAIN, VERSION)

    def scan(u, x_dbl, dt_weight, dt_bias, A, D, z, A_scale=None):
        return mamba.SelectiveScan(u, x_dbl, dt_weight, dt_bias, A, D, z)

    def conv(x, weight, bias):
        return mamba.CausalConv1dSiLU(x, weight, bias)

    table = {torch.ops.mamba.selective_scan.default: scan, torch.ops.mamba.causal_conv1d_silu.default: conv}
    x = torch.as_tensor(example_input, dtype=torch.float32)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" chatter
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(inference_mode(module), (x,), dynamo=True, custom_translation_table=table,
                                        verbose=False)
        except Exception as exc:
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise CompileError(f"ONNX export failed: {first[:300]}") from None
    path = Path(path)
    if path.exists():
        raise CompileError(f"{path} exists; mamba_tvm does not overwrite files it did not write: give a new path")
    program.save(str(path))
    return path


def main(argv=None) -> int:
    return run_cli(lambda: _main(argv))


def _main(argv) -> int:
    from .frontend.check_inputs import check_input
    from .frontend.model import load_model

    p = argument_parser(prog="python -m mamba_tvm.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model file (default: the bundled KWS-10)")
    p.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write (must not exist)")
    p.add_argument("--seq-len", type=int, default=None, help="T of the exported input (default: the sample's)")
    args = p.parse_args(argv)
    model = load_model(args.model or DEFAULT_MODEL)
    if model.module is None:
        raise CompileError(f"{args.model} is already ONNX")
    x, _ = check_input(model, args.seq_len)
    path = export_onnx(model.traced, x, args.onnx)
    print(path)
    return 0


if __name__ == "__main__":
    exit_with(main())
