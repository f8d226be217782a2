"""The tuning loop: candidates -> builder/runner -> parity check -> MetaSchedule database -> record.

Strategy (small spaces, so no cost model is needed to rank them):
1. model-level knobs (space.MODEL_KNOBS): each assignment is one whole-model trial per model,
   kernels on the fixed rules; the assignment with the lowest summed count ratio wins;
2. kernel knobs: in each trial every tunable kernel gets its next untried point (its space in a
   seeded random order, the fixed rule first: MetaSchedule's ReplayTrace without repeats), so
   one QEMU run measures one candidate of every kernel; a kernel whose space is exhausted keeps
   its best point. Kernels do not share code (weights are laid out per kernel, the helpers are
   model-level), so each kernel's count depends on its own knobs only;
3. verification: the best point of every kernel together, measured and checked once more.

Every trial's logits are checked against the float64 reference (the parity bound of the test
suite: max |error| <= 1e-5 * max(1, max |reference|), and the same argmax where the reference's
margin exceeds that); a trial that fails is rejected: its points are stored with MetaSchedule's
failure time (1e10) and the reason is logged in rejected.jsonl, so it is never chosen and never
retried. Every measured point is a TuningRecord (trace of sample_categorical decisions, workload
= the kernel's TIR as FuseTIR made it, run_secs = [instructions]) in a JSONDatabase, so a rerun
with the same database measures only what is missing.
"""
from __future__ import annotations

import json
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .measure import Job, Result, measure
from .space import MODEL_KNOBS, kernel_knobs, valid_model_point, point_trace, points, trace_point

FAILED = 1e10  # MetaSchedule's run time for a failed measurement
PARITY_REL = 1e-5
TIE = 0.002  # a kernel point must beat the fixed rule by more than this fraction to replace it


@dataclass
class KernelSpace:
    name: str
    hash: str
    signature: str
    workload: object  # IRModule({"main": kernel}) as FuseTIR made it
    knobs: dict  # knob -> values (kernel knobs and the model-level ones)


@dataclass
class ModelTask:
    path: str
    name: str
    x: np.ndarray
    reference: np.ndarray
    kernels: list[KernelSpace]
    default: Result | None = None
    tuned: Result | None = None
    trials: int = 0
    rejected: int = 0
    calls: dict = field(default_factory=dict)  # kernel name -> calls per inference
    default_inference: float = 0.0  # the tuned kernels' instructions in one inference, fixed rules
    tuned_inference: float = 0.0  # the same with the chosen knobs


@dataclass
class TuneReport:
    core: str
    target: str
    model_knobs: dict
    tasks: list[ModelTask]
    chosen: dict = field(default_factory=dict)  # (model, kernel) -> (knobs, count)
    record_path: Path | None = None
    new_trials: int = 0
    form: str = "timestep/fp32"  # fusion/weights the kernels were tuned in
    unit: str = "instructions"  # what the runner counted: QEMU instructions, a board's cycles
    measured_on: str = ""


def parity_error(logits, reference: np.ndarray) -> str | None:
    """None if the logits are within the parity bound of the float64 reference, else why not."""
    y = np.asarray(logits, dtype=np.float64).reshape(-1)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if y.shape != ref.shape or not np.all(np.isfinite(y)):
        return f"logits {y.tolist()[:4]}... are not finite or not of the reference's shape"
    bound = PARITY_REL * max(1.0, float(np.max(np.abs(ref))))
    err = float(np.max(np.abs(y - ref)))
    if err > bound:
        return f"max |logit error| {err:.3g} > bound {bound:.3g}"
    top2 = np.sort(ref)[-2:] if ref.size > 1 else ref
    if ref.size > 1 and top2[1] - top2[0] > bound and int(np.argmax(y)) != int(np.argmax(ref)):
        return f"argmax {int(np.argmax(y))} != reference {int(np.argmax(ref))}"
    return None


def reference_f64(model, x: np.ndarray, weights: str) -> np.ndarray:
    """What a candidate must compute: the module in float64 (int8: the quantized graph)."""
    import torch

    from ..frontend.reference import reference_logits

    if weights == "int8":
        from ..driver import int8_graph_logits

        return np.asarray(int8_graph_logits(model, x), dtype=np.float64).reshape(-1)
    if model.module is None:  # ONNX: onnx's reference evaluator (float32)
        return np.asarray(model.reference(x), dtype=np.float64).reshape(-1)
    return reference_logits(model.module, x, torch.float64)[0]


def kernel_spaces(model, seq_len: int, fusion: str, weights: str, base: dict) -> list[KernelSpace]:
    """Every kernel of the model with knobs to tune, as the kernel passes will see it."""
    import tvm

    from ..compiler import TIME_STEP_TRACE_LEN, import_model
    from ..passes.kernel_schedules import kernel_hash, kernel_signature, kernels_of
    from ..pipeline import graph_passes, model_passes

    trace_len = max(seq_len, TIME_STEP_TRACE_LEN) if fusion == "timestep" else seq_len
    mod = tvm.transform.Sequential(model_passes(fusion, weights) + graph_passes())(import_model(model, trace_len))
    spaces = []
    for name, (_gv, func) in sorted(kernels_of(mod).items()):
        knobs = {k: _with_default(v, base[k]) for k, v in kernel_knobs(func).items()}
        if knobs:
            knobs.update({k: _with_default(v, base[k]) for k, v in MODEL_KNOBS.items()})
            spaces.append(KernelSpace(name, kernel_hash(func), kernel_signature(name, func),
                                      tvm.IRModule({"main": func}), knobs))
    return spaces


def _with_default(values, default) -> tuple:
    """The space's values with the fixed rule's value first (the point every search starts from)."""
    return (default,) + tuple(v for v in values if v != default)


class Tuner:
    def __init__(self, target: str, models: list[str], trials: int | None = None, workers: int = 1,
                 tracker: str | None = None, key: str | None = None, db_dir: Path | None = None,
                 fusion: str = "timestep", weights: str = "fp32", mode: str = "sequence", seed: int = 0,
                 record_path: Path | None = None, progress=None, corrupt: dict | None = None,
                 model_knobs: bool = True, board=None):
        import tvm
        import tvm.s_tir.meta_schedule as ms

        from schedules import load_schedule, tuned_record_path

        from ..driver import resolve_target

        self.target = target
        self.platform, self.board = resolve_target(target)
        self.core = self.board.core
        self.base = load_schedule(self.core)
        self.models, self.trials, self.workers = models, trials, max(1, workers)
        self.tracker, self.key = tracker, key
        self.board_runner = board  # measure.BoardRunner: one board, so one candidate at a time
        if board is not None:
            self.workers = 1
        self.fusion, self.weights, self.mode, self.seed = fusion, weights, mode, seed
        self.db_dir = Path(db_dir or Path("tune_db") / self.core)
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.db = ms.database.JSONDatabase(work_dir=str(self.db_dir))
        self.ms_target = tvm.target.Target("c")
        self.record_path = Path(record_path) if record_path else tuned_record_path(self.core)
        self.progress = progress  # callable(done, total, best_text) or None
        self.corrupt = corrupt or {}
        self.search_model_knobs = model_knobs
        self._done = self._total = 0
        self.results: list = []  # (model, job, result, rejection reason or None) of every trial run

    # -- database -------------------------------------------------------------------------------
    def _workload(self, mod):
        return self.db.commit_workload(mod)

    def _measured(self, space: KernelSpace) -> dict:
        """point (as a sorted tuple) -> count (FAILED if rejected), from the database."""
        wl = self._workload(space.workload)
        out = {}
        for rec in self.db.get_top_k(wl, 1 << 20):
            point = trace_point(rec.trace, space.knobs)
            if point is not None:  # a point measured twice (resumed runs, models sharing a kernel): its minimum
                count = float(rec.run_secs[0]) if rec.run_secs else FAILED
                out[_key(point)] = min(count, out.get(_key(point), FAILED))
        # get_top_k leaves out failed records: they are in the rejection log
        for line in self._rejected_lines():
            if line.get("hash") == space.hash:
                out.setdefault(_key(line["point"]), FAILED)
        return out

    def _rejected_lines(self) -> list[dict]:
        path = self.db_dir / "rejected.jsonl"
        if not path.is_file():
            return []
        return [json.loads(s) for s in path.read_text().splitlines() if s.strip()]

    def _commit(self, task: ModelTask, job: Job, result: Result, reason: str | None) -> None:
        import tvm.s_tir.meta_schedule as ms

        model_knobs = {k: job.base_knobs[k] for k in MODEL_KNOBS}
        for space in task.kernels:
            point = {**{k: job.base_knobs[k] for k in space.knobs}, **job.overrides.get(space.name, {}),
                     **model_knobs}
            point = {k: point[k] for k in space.knobs}
            count = result.kernels.get(space.name) if reason is None else None
            if count is None:
                why = reason or f"kernel {space.name} not in the profile"
                with open(self.db_dir / "rejected.jsonl", "a") as f:
                    f.write(json.dumps({"model": task.name, "kernel": space.name, "hash": space.hash,
                                        "point": point, "trial": job.trial, "reason": why}) + "\n")
                continue
            rec = ms.database.TuningRecord(point_trace(space.workload, space.knobs, point),
                                           self._workload(space.workload), [float(count)], self.ms_target)
            self.db.commit_tuning_record(rec)

    def _unit(self) -> str:
        """What this run's firmware counted (a board: cycles), from its measurements."""
        units = {r.unit for _m, _j, r, _why in self.results if r.ok}
        return units.pop() if len(units) == 1 else "instructions"

    def _measured_on(self) -> str:
        if self.board_runner is not None:
            return f"{self.target} on {self.board_runner.port}"
        return self.target

    # -- running --------------------------------------------------------------------------------
    def _job(self, task: ModelTask, trial: int, model_point: dict, overrides: dict) -> Job:
        return Job(trial, task.path, self.target, {**self.base, **model_point}, overrides, task.x, self.mode,
                   self.fusion, self.weights, self.tracker, self.key, self.corrupt, self.board_runner)

    def _run(self, jobs: list[tuple[ModelTask, Job]]) -> list[tuple[ModelTask, Job, Result, str | None]]:
        """Measure the jobs (in parallel on the workers), check each, store each in the database."""
        out = []

        def done(task, job, result):
            reason = result.error if not result.ok else parity_error(result.logits, task.reference)
            if result.ok and result.calls:
                self._save_calls(task, result.calls)
            task.trials += 1
            self.results.append((task.name, job, result, reason))
            task.rejected += reason is not None
            self._commit(task, job, result, reason)
            out.append((task, job, result, reason))
            self._done += 1
            if self.progress:
                self.progress(self._done, self._total, self._best_text())

        if self.workers <= 1 or len(jobs) <= 1:
            for task, job in jobs:
                done(task, job, measure(job))
        else:
            pool = ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=get_context("spawn"))
            try:
                futures = [(task, job, pool.submit(measure, job)) for task, job in jobs]
                for task, job, fut in futures:
                    done(task, job, fut.result())
            except BaseException:  # Ctrl-C, SIGTERM: stop our workers now, not after their trials
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        return out

    def _save_calls(self, task: ModelTask, calls: dict) -> None:
        """Calls per inference of each kernel (knob-independent), kept beside the database so a
        resumed run can weigh per-call counts without measuring again."""
        path = self.db_dir / "calls.json"
        table = json.loads(path.read_text()) if path.is_file() else {}
        if table.get(task.name) != calls:
            table[task.name] = calls
            path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        task.calls = dict(calls)

    def _sidecar(self, name: str) -> dict:
        path = self.db_dir / name
        return json.loads(path.read_text()) if path.is_file() else {}

    def _load_calls(self, task: ModelTask) -> None:
        path = self.db_dir / "calls.json"
        if not task.calls and path.is_file():
            task.calls = json.loads(path.read_text()).get(task.name, {})

    def _inference(self, task: ModelTask, per_call: dict) -> float:
        """Instructions of the tuned kernels in one inference, from per-call counts."""
        return sum(per_call.get(s.name, 0) * task.calls.get(s.name, 0) for s in task.kernels)

    def _best_text(self) -> str:
        parts = []
        for task in getattr(self, "_tasks", []):
            if task.default is not None and task.default.ok and task.calls:
                best = self._inference(task, {s.name: self._best(task, s)[1] for s in task.kernels})
                base = self._inference(task, task.default.kernels)
                parts.append(f"{task.name} {base / best:.3f}x" if best else task.name)
        return ", ".join(parts)

    def _best(self, task: ModelTask, space: KernelSpace) -> tuple[dict, float]:
        """The kernel's best measured point under the chosen model knobs, and its count."""
        measured = self._measured(space)
        want = {k: self.model_point[k] for k in MODEL_KNOBS}
        good = [(c, dict(p)) for p, c in measured.items()
                if c < FAILED and all(dict(p)[k] == v for k, v in want.items())]
        if not good:
            default = {k: {**self.base, **want}[k] for k in space.knobs}
            return default, float(task.default.kernels.get(space.name, 0)) if task.default else 0.0
        default = _key({k: {**self.base, **want}[k] for k in space.knobs})
        count, point = min(good, key=lambda cp: (cp[0], list(measured).index(_key(cp[1]))))
        # within the measurement's resolution of the fixed rule (the M7's timer ticks every 40
        # instructions; the scan's count varies with the input by ~0.03%) the fixed rule stays
        if default in measured and measured[default] < FAILED and count > measured[default] * (1 - TIE):
            return dict(default), measured[default]
        return point, count

    # -- the search -----------------------------------------------------------------------------
    def run(self) -> TuneReport:
        from ..frontend.check_inputs import check_input
        from .measure import _model

        tasks = []
        for path in self.models:
            model = _model(str(path))
            x, _ = check_input(model, None)
            tasks.append(ModelTask(str(path), model.name, x, reference_f64(model, x, self.weights),
                                   kernel_spaces(model, x.shape[1], self.fusion, self.weights, self.base)))
        self._tasks = tasks
        base_point = {k: self.base[k] for k in MODEL_KNOBS}
        model_points = [p for p in points({k: _with_default(v, self.base[k]) for k, v in MODEL_KNOBS.items()})
                        if valid_model_point(p)] if self.search_model_knobs else [base_point]

        # 1. model-level knobs: measured unless the database has every kernel at that point
        self.model_point = base_point
        jobs, trial = [], 0
        for task in tasks:
            for mp in model_points:
                if not self._have_point(task, mp, {}):
                    jobs.append((task, self._job(task, trial, mp, {})))
                    trial += 1
        # --trials counts every measurement of a model, those of earlier runs in the database included
        done_before = self._sidecar("trials.json")
        budget = None if self.trials is None else max(0, min(
            self.trials - len(model_points) - done_before.get(t.name, 0) for t in tasks))
        # the progress total, estimated with the fixed rules' model knobs until they are chosen
        self._total = len(jobs) + len(tasks) * (self._plan_kernel_trials(tasks, base_point, budget) + 1)
        results = self._run(jobs)
        for task, job, result, reason in results:
            if all(job.base_knobs[k] == v for k, v in base_point.items()) and reason is None:
                task.default = result
        for task in tasks:  # the fixed rules' counts, from the database when resumed
            self._load_calls(task)
            if task.default is None:
                task.default = self._point_result(task, base_point)
        if len(model_points) > 1:
            self.model_point = min(model_points, key=lambda mp: (self._model_score(tasks, mp),
                                                                 model_points.index(mp)))
        # 2. kernel knobs
        n = self._plan_kernel_trials(tasks, self.model_point, budget)
        jobs = []
        queues = {id(t): self._queues(t, self.model_point, random.Random(self.seed)) for t in tasks}
        for i in range(n):
            for task in tasks:
                overrides = {}
                for space in task.kernels:
                    q = queues[id(task)][space.name]
                    if q:
                        overrides[space.name] = _kernel_part(q.pop(0), space)
                if overrides:
                    jobs.append((task, self._job(task, 1000 + i, self.model_point, overrides)))
        self._total = self._done + len(jobs) + len(tasks)
        self._run(jobs)
        for task in tasks:
            done_before[task.name] = done_before.get(task.name, 0) + sum(1 for _, j in jobs if j.trial >= 1000
                                                                          and j.model_path == task.path)
        (self.db_dir / "trials.json").write_text(json.dumps(done_before, indent=1, sort_keys=True) + "\n")
        # 3. verification: every kernel's best point together
        report = TuneReport(self.core, self.target, self.model_point, tasks, form=f"{self.fusion}/{self.weights}",
                            unit=self._unit(), measured_on=self._measured_on())
        jobs = []
        for task in tasks:
            overrides = {}
            for space in task.kernels:
                point, _ = self._best(task, space)
                overrides[space.name] = _kernel_part(point, space)
                report.chosen[(task.name, space.name)] = overrides[space.name]
            jobs.append((task, self._job(task, 9999, self.model_point, overrides)))
        for task, job, result, reason in self._run(jobs):
            if reason is not None:
                from ..errors import MambaTVMError

                raise MambaTVMError(f"{task.name}: the combined tuned schedule failed its check ({reason}); "
                                    "no record written")
            task.tuned = result
            task.default_inference = self._inference(task, task.default.kernels)
            task.tuned_inference = self._inference(task, result.kernels)
        report.new_trials = self._done
        return report

    def _have_point(self, task: ModelTask, model_point: dict, overrides: dict) -> bool:
        for space in task.kernels:
            point = {**{k: {**self.base, **model_point}[k] for k in space.knobs}, **overrides.get(space.name, {})}
            if _key({k: point[k] for k in space.knobs}) not in self._measured(space):
                return False
        return bool(task.kernels)

    def _point_result(self, task: ModelTask, model_point: dict) -> Result:
        """A Result rebuilt from the database (kernel counts at the fixed rules and model_point)."""
        counts = {}
        for space in task.kernels:
            point = {k: {**self.base, **model_point}[k] for k in space.knobs}
            counts[space.name] = self._measured(space).get(_key(point), FAILED)
        return Result(-1, all(c < FAILED for c in counts.values()), None, counts)

    def _model_score(self, tasks: list[ModelTask], mp: dict) -> float:
        """Sum over models of (kernels' count at mp) / (at the fixed rules); inf if one failed."""
        score = 0.0
        for task in tasks:
            r = self._point_result(task, mp)
            base = self._inference(task, task.default.kernels) if task.default and task.default.ok else 0
            total = self._inference(task, r.kernels)
            if not r.ok or not base:
                return float("inf")
            score += total / base
        return score

    def _queues(self, task: ModelTask, model_point: dict, rng: random.Random) -> dict:
        out = {}
        for space in task.kernels:
            measured = self._measured(space)
            sub = {k: v for k, v in space.knobs.items() if k not in MODEL_KNOBS}
            pts = [{**p, **{k: model_point[k] for k in MODEL_KNOBS}} for p in points(sub)]
            first, rest = pts[:1], pts[1:]
            rng.shuffle(rest)
            out[space.name] = [p for p in first + rest if _key(p) not in measured]
        return out

    def _plan_kernel_trials(self, tasks, model_point, budget) -> int:
        longest = max((len(q) for t in tasks for q in self._queues(t, model_point, random.Random(0)).values()),
                      default=0)
        return longest if budget is None else min(longest, budget)


def _key(point: dict) -> tuple:
    return tuple(sorted(point.items()))


def _kernel_part(point: dict, space: KernelSpace) -> dict:
    return {k: v for k, v in point.items() if k not in MODEL_KNOBS}


def write_record(report: TuneReport, path: Path, note: str = "", model_knobs_searched: bool = True) -> dict:
    """schedules/<core>.json: the chosen knobs per kernel signature and shape, merged with the
    entries already there for other kernels (other models, other shapes). A run that kept the
    fixed model knobs (--no-model-knobs) leaves the record's searched ones as they are."""
    import tvm

    from schedules import RULES_VERSION

    from .. import __version__

    old = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
    if old.get("rules_version") != RULES_VERSION:
        old = {}
    entries = {e["hash"]: e for e in old.get("kernels", []) if "hash" in e}
    models = dict(old.get("models", {}))
    for task in report.tasks:
        for space in task.kernels:
            calls = task.calls.get(space.name, 0)
            default = task.default.kernels.get(space.name, 0) if task.default else 0
            tuned = task.tuned.kernels.get(space.name, 0)
            knobs = report.chosen[(task.name, space.name)]
            entries[space.hash] = {"kernel": space.name, "signature": space.signature, "hash": space.hash,
                                   "model": f"{task.name} {report.form}", "knobs": knobs,
                                   "count": round(tuned * calls), "default_count": round(default * calls),
                                   "calls": calls, "count_per_call": round(tuned, 1)}
        models[f"{task.name} {report.form}"] = {
            "default": round(task.default_inference), "tuned": round(task.tuned_inference),
            "whole_run": int(task.tuned.total), "new_trials": task.trials, "rejected": task.rejected}
    record = {
        "core": report.core,
        "rules_version": RULES_VERSION,
        "tool": f"mamba_tvm {__version__} (python -m mamba_tvm.tune), apache-tvm {tvm.__version__}",
        "measured_on": report.measured_on or report.target,
        "unit": (f"{report.unit} (per kernel, summed over its calls; "
                 f"{'QEMU' if report.unit == 'instructions' else 'the board'})"),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": note or old.get("note", ""),
        "model_knobs": (report.model_knobs if model_knobs_searched or "model_knobs" not in old
                        else old["model_knobs"]),
        "models": models,
        "kernels": sorted(entries.values(), key=lambda e: (e.get("model", ""), e["kernel"])),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record
