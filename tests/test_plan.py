"""The arena planner: liveness-correct placement, and kernel temporaries inside the plan."""
import pytest

from mamba_tvm.compiler import compile_model
from mamba_tvm.device.host import build_host_runner, run_host
from mamba_tvm.passes.kernel_workspace import WORKSPACE_ATTR
from mamba_tvm.pipeline import mcu_pipeline
from mamba_tvm.plan import Tensor, check_plan, greedy_by_size
from tests.reference_f64 import parity_errors


def _t(name, nbytes, first, last):
    return Tensor(name, "arena", (nbytes // 4,), nbytes, first_use=first, last_use=last)


def test_greedy_reuses_dead_tensors_and_never_overlaps_live_ones():
    ts = [_t("a", 4000, 0, 1), _t("b", 1600, 1, 2), _t("c", 4000, 2, 3), _t("d", 800, 0, 3)]
    size = greedy_by_size(ts)
    by = {t.name: t for t in ts}
    assert by["a"].offset == by["c"].offset  # a is dead when c is born
    assert size == 4000 + 1600 + 800  # peak live set, each 16-byte aligned already
    for i, x in enumerate(ts):
        for y in ts[i + 1:]:
            if not (x.last_use < y.first_use or y.last_use < x.first_use):
                assert x.offset + x.nbytes <= y.offset or y.offset + y.nbytes <= x.offset


def _overlapping_live_pairs(program):
    """Pairs of arena tensors used by one kernel call (or live across it) whose bytes overlap;
    written here, independently of plan.check_plan."""
    live = program.arena_tensors()
    pairs = []
    for i, a in enumerate(live):
        for b in live[i + 1:]:
            if a.first_use <= b.last_use and b.first_use <= a.last_use and \
                    a.offset < b.offset + b.nbytes and b.offset < a.offset + a.nbytes:
                pairs.append((a.name, b.name))
    return pairs


@pytest.mark.parametrize("name, fusion, weights", [("kws10", "layer", "fp32"), ("kws10", "timestep", "fp32"),
                                                   ("two_blocks", "layer", "fp32"), ("odd_dims", "timestep", "fp32"),
                                                   ("kws10", "timestep", "int8")])
def test_no_two_live_tensors_share_bytes(built, name, fusion, weights):
    for program in built(name, fusion=fusion, weights=weights).compiled.programs.values():
        assert _overlapping_live_pairs(program) == []
        assert all(t.offset + t.nbytes <= program.arena_bytes for t in program.arena_tensors())


def test_every_fixture_plan_is_valid_and_reuses_memory(built):
    for name in ("kws10", "har6", "two_blocks"):
        p = built(name, fusion="layer").compiled.program
        check_plan(p)  # raises on overlap
        assert p.arena_bytes < p.unplanned_bytes
        peak = max(sum(t.nbytes for t in p.arena_tensors() if t.first_use <= step <= t.last_use)
                   for step in range(len(p.calls)))
        assert peak <= p.arena_bytes


def test_unfused_temporaries_move_into_the_arena(built, tmp_path):
    """Without FuseEpilogues (and BlockMatvec, which attaches epilogues too), matmul+bias keeps
    a (T, d) intermediate: it must become an arena workspace (live only during its kernel),
    not a C stack array, and stay correct."""
    spec = built("har6").spec
    compiled = compile_model(spec, spec.sample_input.shape[1], fusion="layer",
                             pipeline=mcu_pipeline(fuse_epilogues=False, matvec_block=1))
    hoisted = {n: f.attrs[WORKSPACE_ATTR] for n, f in compiled.program.kernels.items()
               if f.attrs and WORKSPACE_ATTR in f.attrs}
    assert hoisted, "expected the unfused matmul intermediates to be hoisted"
    ws = [t for t in compiled.program.arena_tensors() if any(w in t.name for v in hoisted.values() for w in v)]
    assert ws and all(t.first_use == t.last_use for t in ws)
    assert max(compiled.kernel_temporaries().values()) <= 256
    compiled.write(tmp_path)
    got = run_host(build_host_runner(tmp_path, compiled.c_files), spec.sample_input)
    want = built("har6").reference(spec.sample_input)[0]
    assert not parity_errors(got, want), parity_errors(got, want)
    # the workspaces are counted by the plan (they may fit in space that is dead at that call)
    assert compiled.program.unplanned_bytes > built("har6", fusion="layer").compiled.program.unplanned_bytes


def test_step_kernels_write_over_inputs_nothing_reads_after(built):
    """KWS-10's time step: the conv writes u over x and the scan y over u (LowerMambaOps'
    consumable_args), so the arena holds z, u and x_dbl alone at the scan (1,168 B, not
    1,680 B); parity is the fixture tests'."""
    step = built("kws10").compiled.programs["step"]
    calls = {c.kernel: c.args for c in step.calls}
    conv, scan = calls["mamba_conv_step"], calls["mamba_scan_step"]
    assert len(conv) == 4 and len(scan) == 8  # no separate output buffer
    assert scan[0] == conv[0]  # the in_proj output, overwritten twice
    assert step.arena_bytes == 2 * 512 + 144


def test_consumable_args_spares_parameters_views_and_later_reads():
    """An argument is overwritten only if the graph computed it and nothing reads its storage
    afterwards: not a parameter, not a tensor read later directly or through a view."""
    from tvm import relax

    from mamba_tvm.passes.lower_mamba_ops import consumable_args
    from relay_ops.mamba_ops import mamba_call

    def conv_step(bb, x, state, w, b):
        ty = relax.TupleType([x.ty, state.ty])
        return bb.emit(mamba_call("causal_conv1d_silu_step", [x, state, w, b], ty))

    x = relax.Var("x", relax.TensorType((1, 8), "float32"))
    state = relax.Var("state", relax.TensorType((1, 8, 3), "float32"))
    w = relax.const(__import__("numpy").zeros((8, 4), "float32"))
    b = relax.const(__import__("numpy").zeros((8,), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("f", [x, state]):
        direct = conv_step(bb, x, state, w, b)                       # x is a parameter
        h = bb.emit(relax.op.add(x, x))
        view = bb.emit(relax.op.reshape(h, (8,)))
        kept = conv_step(bb, h, state, w, b)                         # h read later through a view
        later = bb.emit(relax.op.add(view, view))
        g = bb.emit(relax.op.multiply(x, x))
        last = conv_step(bb, g, state, w, b)                         # g read by nobody after
        bb.emit_func_output(relax.Tuple([later, bb.emit(relax.TupleGetItem(last, 0)), direct, kept]))
    found = {v.name: set(s) for v, s in consumable_args(bb.get()["f"]).items()}
    assert found[direct.name] == set() and found[kept.name] == set()
    assert found[last.name] == {0}
