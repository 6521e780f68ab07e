"""Reproduce one paper ablation, CPU-scaled, from one command: train, evaluate, tabulate, plot, with provenance.

    python experiments/reproduce.py <name>                 # experiments/reproductions/<name>.yaml
    python experiments/reproduce.py <name> --jobs 2        # two train/eval commands at a time
    python experiments/reproduce.py <name> --smoke         # the spec's smoke overrides: checks the path in minutes
    python experiments/reproduce.py --list                 # the reproductions, their papers and budgets
    python experiments/reproduce.py --update-readme        # experiments/README.md's table, from the results files

A reproduction (``experiments/reproductions/<name>.yaml``, see :func:`load_spec`) names the ``train.py`` runs
(variants x training seeds) and the *arms* of its table: one trained variant evaluated by ``eval.py`` with fixed
episode seeds (``seed`` of ``conf/eval.yaml``: episode i is reset with 1000 + i whatever the training seed) and
optional evaluation overrides (e.g. ``policy.overrides={num_inference_steps: 5}``).

Resumable: every command is skipped when its output is complete (``train_done.json`` beside a run, written after
``train.py`` exits 0; ``eval_info.json`` of an evaluation), and an interrupted ``train.py`` continues from its
``last.ckpt`` (``ckpt_path=auto`` in the same ``hydra.run.dir``). Re-running the same command at the same commit
picks up where it stopped; a run started at another commit is refused (its provenance would mix two code
versions), naming the commit to check out or the folder to delete.

Layout (``--out``, default ``outputs/reproduce``): ``<out>/<run group>/<variant>/seed<seed>/`` is the training run
(Hydra's ``.hydra/``, ``provenance.jsonl``, ``checkpoints/``, ``train.log``) and ``evals/<arm>/`` its evaluations.

Results (``--results``, default ``experiments/results/<name>``), written only when every run is done:

- ``results.json``: :func:`robolearn.utils.provenance.results_header` of this invocation (commit, clean tree,
  command, hardware, versions), the spec, one row per arm (success pooled over seeds with its Wilson 95 %
  interval, per-seed success, mean extra metrics such as ``select_action`` latency) and, per training run, its
  commits, dataset fingerprint, resolved config and the wall time of each command;
- ``table.md`` / ``table.csv``: the rows; ``plot.png``: success (with the interval) against the spec's x axis.

Every training run's provenance is checked (:func:`collect.check_provenance`: clean tree, one commit, in this
repository, holding the selected configs); a failing run stops the collection unless ``--allow-dirty``, which
marks its rows ``UNVERIFIED``. A dirty tree at the start is refused the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SPEC_DIR = REPO / "experiments" / "reproductions"
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO))

import collect  # noqa: E402  (experiments/collect.py, next to this file)

from robolearn.eval.metrics import wilson_interval  # noqa: E402
from robolearn.utils.provenance import SourceStateError, finish_header, git_state, results_header  # noqa: E402

SPEC_KEYS = {"title", "paper", "paper_result", "full_scale", "budget", "seeds", "train", "eval", "arms", "plot",
             "smoke", "run_group"}
TRAIN_DONE = "train_done.json"


class SpecError(ValueError):
    """A reproduction spec that does not have the expected shape (the message names the file and key)."""


@dataclass(frozen=True)
class TrainRun:
    """One ``train.py`` run: a variant of the spec at one training seed."""

    variant: str
    seed: int
    run_dir: Path
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class EvalRun:
    """One ``eval.py`` run: an arm of the table, evaluating one training run (None: a baseline arm, e.g. the
    scripted expert, whose policy comes from its overrides)."""

    arm: str
    train: TrainRun | None
    out_dir: Path
    overrides: tuple[str, ...]


def slug(name: str) -> str:
    """A folder name for an arm: its name with every run of characters other than letters, digits, ``.``, ``_``
    and ``-`` replaced by ``_`` (Hydra's override grammar and shells take it unquoted)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "arm"


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: expected a list of Hydra override strings, got {value!r}")
    return list(value)


def load_spec(name: str, spec_dir: Path = SPEC_DIR) -> dict[str, Any]:
    """Read and check ``<spec_dir>/<name>.yaml`` (or ``name`` itself when it is a path ending in ``.yaml``).

    Keys: ``title``, ``paper`` (citation and section), ``paper_result`` (the paper's number), ``full_scale`` (the
    full-scale command), ``budget`` (the stated CPU cost), ``seeds`` (training seeds, >= 1 int), ``train``
    (``common``: overrides of every run; ``variants``: ``{variant: [overrides]}``), ``eval`` (``common``: overrides
    of every evaluation, e.g. ``env=...`` and ``eval.n_episodes=50``), ``arms`` (a list of ``{name, train: variant,
    eval: [overrides], x: number}``; ``train: null`` is a baseline arm, such as ``policy=scripted``, evaluated once),
    ``plot`` (``x``: ``"arm"``, ``"x"`` or an ``aggregated`` key of
    ``eval_info.json`` such as ``select_action_ms_mean``; ``xlabel``; ``log_x``; ``extra``: aggregated keys
    tabulated beside success), ``smoke`` (``train``/``eval`` overrides appended with ``--smoke``) and
    ``run_group`` (the folder under ``--out`` holding the runs; default the spec's name).

    ``train: {from: <other spec>, variants: {...}}`` shares the other spec's training runs: its ``common``
    overrides, variants and run group are taken, and the variants given here are added (so two tables read one
    set of trained policies, e.g. ACT's chunk-size and ensembling ablations).

    Raises:
        FileNotFoundError: no such spec (the message lists the available ones).
        SpecError: a missing or unknown key, or a value of the wrong type.
    """
    path = Path(name) if name.endswith(".yaml") else spec_dir / f"{name}.yaml"
    name = path.stem
    if not path.is_file():
        known = sorted(p.stem for p in spec_dir.glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no such reproduction; available: {known}")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    unknown, missing = set(spec) - SPEC_KEYS, {"title", "seeds", "train", "eval", "arms"} - set(spec)
    if unknown or missing:
        raise SpecError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    seeds = spec["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise SpecError(f"{path}: seeds must be a non-empty list of ints, got {seeds!r}")
    train = spec["train"] or {}
    own = {str(k): _str_list(v, f"{path}: train.variants.{k}") for k, v in (train.get("variants") or {}).items()}
    if train.get("from"):
        if "common" in train or "run_group" in spec:
            raise SpecError(f"{path}: train.from shares {train['from']!r}'s common overrides and run group; "
                            "do not set train.common or run_group as well")
        base = load_spec(str(train["from"]), spec_dir)
        clash = sorted(set(own) & set(base["train"]["variants"]))
        if clash:
            raise SpecError(f"{path}: variants {clash} are already defined by {train['from']!r}")
        spec["train"] = {"common": base["train"]["common"], "variants": {**base["train"]["variants"], **own}}
        spec["run_group"] = base["run_group"]
        shared_smoke_train = base["smoke"]["train"]
    else:
        shared_smoke_train = None
        spec["train"] = {"common": _str_list(train.get("common"), f"{path}: train.common"), "variants": own}
    if not spec["train"]["variants"]:
        raise SpecError(f"{path}: train.variants is empty")
    spec["eval"] = {"common": _str_list((spec["eval"] or {}).get("common"), f"{path}: eval.common")}
    names = set()
    for i, arm in enumerate(spec["arms"] or []):
        if not isinstance(arm, dict) or "name" not in arm or "train" not in arm:
            raise SpecError(f"{path}: arms[{i}] needs a name and a train variant (null for a baseline), got {arm!r}")
        if arm["train"] is None:
            if not any(str(o).startswith("policy=") for o in arm.get("eval") or []):
                raise SpecError(f"{path}: arms[{i}] ({arm['name']}) trains nothing, so its eval overrides must "
                                "choose a policy (e.g. policy=scripted)")
        elif arm["train"] not in spec["train"]["variants"]:
            raise SpecError(f"{path}: arms[{i}] ({arm['name']}) trains {arm['train']!r}, not one of "
                            f"{sorted(spec['train']['variants'])}")
        if slug(arm["name"]) in names:
            raise SpecError(f"{path}: two arms have the folder name {slug(arm['name'])!r} (arm {arm['name']!r})")
        names.add(slug(arm["name"]))
        arm["eval"] = _str_list(arm.get("eval"), f"{path}: arms[{i}].eval")
    if not names:
        raise SpecError(f"{path}: arms is empty")
    smoke = spec.get("smoke") or {}
    if shared_smoke_train is not None and smoke.get("train"):
        raise SpecError(f"{path}: train.from shares {train['from']!r}'s smoke.train; do not set smoke.train")
    spec["smoke"] = {"train": shared_smoke_train if shared_smoke_train is not None
                     else _str_list(smoke.get("train"), f"{path}: smoke.train"),
                     "eval": _str_list(smoke.get("eval"), f"{path}: smoke.eval")}
    spec["plot"] = {"x": "arm", "xlabel": "arm", "log_x": False, "extra": [], **(spec.get("plot") or {})}
    spec["name"] = name
    spec["run_group"] = str(spec.get("run_group") or name)
    return spec


def merge_overrides(*groups: Sequence[str]) -> tuple[str, ...]:
    """Concatenate Hydra override lists; a later override of the same key (the text before ``=``, ignoring a
    leading ``+``/``~``) replaces the earlier one in place, so ``--smoke`` can swap ``experiment=<name>`` for its
    smoke twin."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            merged[override.split("=", 1)[0].lstrip("+~")] = override
    return tuple(merged.values())


def plan(spec: dict[str, Any], out: Path, smoke: bool = False) -> tuple[list[TrainRun], list[EvalRun]]:
    """The training runs (variants used by an arm x seeds) and evaluations (arms x seeds) of a spec; with
    ``smoke`` the spec's smoke overrides are merged last (:func:`merge_overrides`)."""
    base = out / spec["run_group"]
    extra_train = spec["smoke"]["train"] if smoke else []
    extra_eval = spec["smoke"]["eval"] if smoke else []
    used = [v for v in spec["train"]["variants"] if any(a["train"] == v for a in spec["arms"])]
    runs = {(v, s): TrainRun(v, s, base / v / f"seed{s}", merge_overrides(
                spec["train"]["common"], spec["train"]["variants"][v], [f"seed={s}"], extra_train))
            for v in used for s in spec["seeds"]}
    evals = [EvalRun(a["name"], runs[a["train"], s], runs[a["train"], s].run_dir / "evals" / slug(a["name"]),
                     merge_overrides(spec["eval"]["common"], a["eval"], extra_eval))
             for a in spec["arms"] if a["train"] is not None for s in spec["seeds"]]
    evals += [EvalRun(a["name"], None, base / "baselines" / slug(a["name"]),
                      merge_overrides(spec["eval"]["common"], a["eval"], extra_eval))
              for a in spec["arms"] if a["train"] is None]
    return list(runs.values()), evals


def _run(argv: list[str], log: Path, env: dict[str, str]) -> tuple[int, float]:
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n")
        fh.flush()
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc.returncode, round(time.perf_counter() - t0, 1)


def dataset_root_of(run: TrainRun) -> str:
    """The dataset root a finished run trained on (the last record of its ``provenance.jsonl``).

    Raises:
        RuntimeError: the run has no provenance naming its dataset."""
    path = run.run_dir / "provenance.jsonl"
    roots = [((json.loads(x).get("dataset") or {}).get("root")) for x in path.read_text().splitlines() if x.strip()] \
        if path.is_file() else []
    if not roots or not roots[-1]:
        raise RuntimeError(f"{path}: no dataset root recorded; delete {run.run_dir} and rerun")
    return roots[-1]


def do_recording(folder: Path, done_name: str, dataset_root: Path, argv: list[str], env: dict[str, str],
                 head: str | None, check: Callable[[], None] | None = None) -> float | None:
    """Run a seeded recording command (``eval.py`` writing a LeRobotDataset to ``dataset_root``, its output in
    ``folder/<folder name>.log``) unless ``folder/done_name`` exists, then write ``done_name`` (command, seconds,
    commit). An interrupted recording left no ``done_name``: its dataset is deleted and recorded again (the
    command is seeded, so the episodes are the same).

    Args:
        check: called after the command succeeded and before ``done_name`` is written; raise ``RuntimeError`` to
            refuse the recording (``done_name`` is then not written).

    Returns:
        The command's wall time in seconds, or None when the recording was done already.

    Raises:
        RuntimeError: the recording was done at another commit than ``head``, the command failed (names its log),
            or ``check`` refused it.
    """
    done = folder / done_name
    if done.is_file():
        commit = json.loads(done.read_text()).get("commit")
        if head is not None and commit != head:
            raise RuntimeError(f"{folder} was recorded at commit {str(commit)[:7]}, not at HEAD {head[:7]}: check "
                               f"out {str(commit)[:7]} to finish, or delete the folder to record it again")
        return None
    if dataset_root.exists():
        shutil.rmtree(dataset_root)
    log = folder / f"{folder.name}.log"
    rc, seconds = _run(argv, log, env)
    if rc != 0:
        raise RuntimeError(f"{Path(argv[1]).name if len(argv) > 1 else argv[0]} exited with {rc}; see {log}")
    if check is not None:
        check()
    done.write_text(json.dumps({"command": shlex.join(argv), "seconds": seconds,
                                "commit": (git_state(REPO) or {}).get("commit")}, indent=2) + "\n")
    return seconds


def add_run_options(p: argparse.ArgumentParser, name: str, what: str = "the runs") -> None:
    """The options every one-command experiment script shares (``--seed`` excepted): ``--out`` (default
    ``outputs/<name>``; ``outputs/smoke/<name>`` with ``--smoke``), ``--results`` (default
    ``experiments/results/<name>``; ``<out>/results`` with ``--smoke``), ``--accelerator``, ``--smoke`` and
    ``--allow-dirty``. :func:`resolve_run_paths` fills the defaults in after parsing; ``what`` names the runs in
    the help ("the runs", "the run")."""
    p.add_argument("--out", type=Path, default=None,
                   help=f"where {what} go(es) (default outputs/{name}; outputs/smoke/{name} with --smoke)")
    p.add_argument("--results", type=Path, default=None,
                   help=f"results folder (default experiments/results/{name}; <out>/results with --smoke)")
    p.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--smoke", action="store_true", help="tiny runs (debug=smoke): checks the whole path in minutes")
    p.add_argument("--allow-dirty", action="store_true",
                   help="run from a dirty tree; rows of runs failing the provenance checks are marked UNVERIFIED")


def resolve_run_paths(args: argparse.Namespace, name: str) -> None:
    """Fill in ``args.out`` and ``args.results`` (options of :func:`add_run_options`) when not given, as absolute
    paths: ``outputs/[smoke/]<name>`` under the repository, and ``experiments/results/<name>`` (``<out>/results``
    with ``--smoke``, so a smoke run never writes into the committed results)."""
    if args.out is None:
        args.out = REPO / "outputs" / ("smoke" if args.smoke else "") / name
    args.out = Path(args.out).resolve()
    if args.results is None:
        args.results = args.out / "results" if args.smoke else REPO / "experiments" / "results" / name
    args.results = Path(args.results).resolve()


def check_plan_file(out: Path, params: dict[str, Any], what: str = "an experiment") -> None:
    """Write ``<out>/plan.json`` (an experiment's parameters, JSON values), or check that an existing one holds the
    same, so a resumed one-command experiment never mixes runs made with other parameters.

    Raises:
        RuntimeError: ``out`` holds ``what`` ("an experiment", "a round") with other parameters (names them,
            (there, here))."""
    path = out / "plan.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in params.items() if old.get(k) != v}
        if diff:
            raise RuntimeError(f"{out} holds {what} with other parameters {diff} ((there, here)): pass "
                               f"another --out, or delete the folder")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(params, indent=2) + "\n")


def train_command(run: TrainRun, accelerator: str) -> list[str]:
    """``train.py`` into ``run.run_dir``, continuing from its ``last.ckpt`` when one is there."""
    return [sys.executable, "train.py", *run.overrides, f"trainer.accelerator={accelerator}",
            f"hydra.run.dir={run.run_dir}", "ckpt_path=auto", "callbacks.progress_bar=null"]


def eval_command(ev: EvalRun, accelerator: str) -> list[str]:
    """``eval.py`` on the run's export (or the baseline's policy) into ``ev.out_dir`` (no videos; no ``.hydra/``)."""
    policy = [] if ev.train is None else [f"policy.path={ev.train.run_dir}/checkpoints/pretrained_model"]
    return [sys.executable, "eval.py", *policy, *ev.overrides,
            "eval.progress=false", "eval.max_episodes_rendered=0", f"hydra.run.dir={ev.out_dir}",
            "hydra.output_subdir=null", f"device={'cuda' if accelerator == 'gpu' else 'cpu'}"]


def do_train(run: TrainRun, accelerator: str, env: dict[str, str], head: str | None) -> str:
    """Train unless ``train_done.json`` exists; returns a one-line status.

    Raises:
        RuntimeError: the run was started at another commit than ``head``, or ``train.py`` failed (names the log).
    """
    done = run.run_dir / TRAIN_DONE
    run.run_dir.parent.mkdir(parents=True, exist_ok=True)
    # Two reproductions sharing a run (act_temporal_ensemble_cvae reads act_chunk_size's) may run at once: the
    # second waits for the first's training instead of training into the same folder.
    with FileLock(run.run_dir.parent / f".{run.run_dir.name}.train.lock"):
        if done.is_file():
            return f"{run.run_dir}: trained (skipped)"
        return _train_locked(run, accelerator, env, head)


def _train_locked(run: TrainRun, accelerator: str, env: dict[str, str], head: str | None) -> str:
    done = run.run_dir / TRAIN_DONE
    started = collect.check_provenance(run.run_dir, REPO)[0]  # the commits its starts ran at
    if head is not None and started and started != [head]:
        raise RuntimeError(f"{run.run_dir} was started at commit {started[0][:7]}, not at HEAD {head[:7]}: check out "
                           f"{started[0][:7]} to finish it, or delete the folder to restart it at HEAD")
    argv = train_command(run, accelerator)
    attempts = run.run_dir / "train_attempts.jsonl"
    run.run_dir.mkdir(parents=True, exist_ok=True)
    log = run.run_dir / "train.log"
    with open(attempts, "a") as fh:
        fh.write(json.dumps({"start": time.time(), "log_mtime_before": log.stat().st_mtime if log.is_file() else None})
                 + "\n")
    rc, seconds = _run(argv, log, env)
    with open(attempts, "a") as fh:
        fh.write(json.dumps({"end": time.time(), "seconds": seconds, "returncode": rc}) + "\n")
    if rc != 0:
        raise RuntimeError(f"train.py exited with {rc} after {seconds:.0f} s; see {run.run_dir / 'train.log'}")
    total, n = attempt_seconds(attempts)
    done.write_text(json.dumps({"command": shlex.join(argv), "seconds": total, "attempts": n}, indent=2) + "\n")
    return f"{run.run_dir}: trained in {seconds:.0f} s ({n} attempt(s), {total:.0f} s in all)"


def attempt_seconds(attempts: Path) -> tuple[float, int]:
    """``(seconds, attempts)`` of a run's ``train.py`` attempts (``train_attempts.jsonl``). An attempt that was
    killed (a start without an end) is counted until the last write to ``train.log`` before the next attempt
    started (recorded in that attempt's start event); the gap between the two is not counted."""
    events = [json.loads(x) for x in attempts.read_text().splitlines() if x.strip()]
    total, n, start = 0.0, 0, None
    for e in events:
        if "start" in e:
            if start is not None and e.get("log_mtime_before"):  # the previous attempt was killed
                total += max(0.0, e["log_mtime_before"] - start)
            start, n = e["start"], n + 1
        elif start is not None:
            total += e["seconds"]
            start = None
    return round(total, 1), n


def do_eval(ev: EvalRun, accelerator: str, env: dict[str, str]) -> str:
    """Evaluate unless ``eval_info.json`` exists; returns a one-line status.

    Raises:
        RuntimeError: ``eval.py`` failed (names the log).
    """
    if (ev.out_dir / "eval_info.json").is_file():
        return f"{ev.out_dir}: evaluated (skipped)"
    argv = eval_command(ev, accelerator)
    log = ev.out_dir.parent / f"{ev.out_dir.name}.log"
    rc, seconds = _run(argv, log, env)
    if rc != 0:
        raise RuntimeError(f"eval.py exited with {rc}; see {log}")
    (ev.out_dir / "eval_done.json").write_text(json.dumps({"command": shlex.join(argv), "seconds": seconds}) + "\n")
    return f"{ev.out_dir}: evaluated in {seconds:.0f} s"


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def summarize(spec: dict[str, Any], runs: Sequence[TrainRun], evals: Sequence[EvalRun],
              allow_dirty: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(rows, run records)``: one row per arm in spec order, pooled over seeds.

    A row holds ``arm``, ``x``, ``n_seeds``, ``episodes``, ``successes``, ``pc_success`` (pooled, %) with
    ``ci95_low``/``ci95_high`` (Wilson, %), ``per_seed`` (``{seed: % success}``), the mean over seeds of each
    ``plot.extra`` key, and ``unverified`` (how many of its runs failed the provenance checks).

    Raises:
        SourceStateError: a training run fails the provenance checks and ``allow_dirty`` is False.
    """
    records: dict[str, Any] = {}
    for run in runs:
        commits, problems = collect.check_provenance(run.run_dir, REPO)
        prov = [json.loads(x) for x in (run.run_dir / "provenance.jsonl").read_text().splitlines() if x.strip()] \
            if (run.run_dir / "provenance.jsonl").is_file() else []
        config_path = run.run_dir / ".hydra" / "config.yaml"
        records[f"{run.variant}/seed{run.seed}"] = {
            "run_dir": str(run.run_dir.relative_to(REPO) if run.run_dir.is_relative_to(REPO) else run.run_dir),
            "commits": commits, "problems": problems,
            "dataset_fingerprint": sorted({str((p.get("dataset") or {}).get("fingerprint")) for p in prov}),
            "train": _json(run.run_dir / TRAIN_DONE),
            "config": yaml.safe_load(config_path.read_text()) if config_path.is_file() else None,
            "evals": {},
        }
    bad = [p for r in records.values() for p in r["problems"]]
    if bad and not allow_dirty:
        raise SourceStateError("runs fail the provenance checks (rerun them at a clean commit, or pass "
                               "--allow-dirty to tabulate them as UNVERIFIED):\n  " + "\n  ".join(bad))
    rows = []
    for arm in spec["arms"]:
        mine = [e for e in evals if e.arm == arm["name"]]
        per_seed, extras, successes, episodes, unverified = {}, {k: [] for k in spec["plot"]["extra"]}, 0, 0, 0
        for ev in mine:
            info = _json(ev.out_dir / "eval_info.json")
            per_episode = info.get("per_episode") or []
            k = sum(bool(e.get("success")) for e in per_episode)
            successes, episodes = successes + k, episodes + len(per_episode)
            seed = "baseline" if ev.train is None else ev.train.seed
            per_seed[seed] = 100.0 * k / max(1, len(per_episode))
            for key in extras:
                value = (info.get("aggregated") or {}).get(key)
                if value is not None:
                    extras[key].append(float(value))
            key = "baselines" if ev.train is None else f"{ev.train.variant}/seed{ev.train.seed}"
            record = records.setdefault(key, {"problems": [], "train": {}, "evals": {}})
            record["evals"][arm["name"]] = {"pc_success": per_seed[seed], "n_episodes": len(per_episode),
                                            **_json(ev.out_dir / "eval_done.json")}
            unverified += bool(record["problems"])
        low, high = wilson_interval(successes, episodes) if episodes else (float("nan"), float("nan"))
        rows.append({"arm": arm["name"], "x": arm.get("x"), "n_seeds": len(mine), "episodes": episodes,
                     "successes": successes, "pc_success": 100.0 * successes / max(1, episodes),
                     "ci95_low": 100.0 * low, "ci95_high": 100.0 * high, "per_seed": per_seed,
                     **{k: (sum(v) / len(v) if v else None) for k, v in extras.items()}, "unverified": unverified})
    return rows, records


def write_table(spec: dict[str, Any], rows: Sequence[dict[str, Any]], header: dict[str, Any], path: Path) -> None:
    """Markdown table of the rows, titled with the spec and the commit it was measured at."""
    extra = spec["plot"]["extra"]
    train_commits = sorted({c for r in (header.get("runs") or {}).values() for c in r.get("commits", [])})
    smoke = "SMOKE RUN (the spec's tiny settings: checks the path, not a result): " if header.get("smoke") else ""
    lines = [f"# {smoke}{spec['title']}", "",
             f"{spec.get('paper', '')}. Paper: {spec.get('paper_result', '(no paper number)')}.", "",
             f"Collected at commit {header['source']['commit'][:7]}"
             f"{'' if header['source']['clean'] else ' (dirty tree)'} by `{header['command']}`; training runs "
             f"started at commit(s) {', '.join(c[:7] for c in train_commits) or 'none'}; "
             f"{rows[0]['n_seeds'] if rows else 0} training seeds; success pooled over seeds with its Wilson 95 % "
             f"interval; `select_action` times are per call (one call steps every env of an evaluation batch), "
             f"{header.get('threads_per_command', '?')} thread(s) per command, {header.get('jobs', '?')} "
             f"command(s) at a time.", "",
             "| arm | success % (95 % CI) | per seed % | " + " | ".join(extra) + (" |" if extra else "|") + " provenance |",
             "|---|---|---|" + "---|" * len(extra) + "---|"]
    for r in rows:
        cells = [f"{r[k]:.1f}" if isinstance(r.get(k), float) else "–" for k in extra]
        seeds = ", ".join(f"{v:.0f}" for v in r["per_seed"].values())
        prov = f"UNVERIFIED ({r['unverified']}/{r['n_seeds']} runs)" if r["unverified"] else "checked"
        lines.append(f"| {r['arm']} | {r['pc_success']:.0f} ({r['ci95_low']:.0f}–{r['ci95_high']:.0f}) "
                     f"[{r['successes']}/{r['episodes']}] | {seeds} | " + "".join(f"{c} | " for c in cells) + prov + " |")
    path.write_text("\n".join(lines) + "\n")


def write_csv(spec: dict[str, Any], rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The rows as CSV (per-seed values joined by spaces)."""
    keys = ["arm", "x", "n_seeds", "episodes", "successes", "pc_success", "ci95_low", "ci95_high",
            *spec["plot"]["extra"], "per_seed", "unverified"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for r in rows:
            w.writerow([" ".join(f"{s}:{v:.1f}" for s, v in r["per_seed"].items()) if k == "per_seed" else r.get(k)
                        for k in keys])


def plot(spec: dict[str, Any], rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Success (pooled, with the Wilson interval as error bars; per-seed values as dots) against ``plot.x``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = spec["plot"]["x"]
    xs = list(range(len(rows))) if key == "arm" else [r.get(key) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (r, x) in enumerate(zip(rows, xs)):
        if x is None:
            continue
        ax.errorbar([x], [r["pc_success"]], yerr=[[r["pc_success"] - r["ci95_low"]], [r["ci95_high"] - r["pc_success"]]],
                    fmt="o", capsize=4, color="C0")
        ax.scatter([x] * len(r["per_seed"]), list(r["per_seed"].values()), s=12, color="C1", zorder=3)
        ax.annotate(r["arm"], (x, r["pc_success"]), textcoords="offset points", xytext=(6, -12 if i % 2 else 4),
                    fontsize=8)
    if key == "arm":
        ax.set_xticks(xs, [r["arm"] for r in rows], rotation=20)
    if spec["plot"].get("log_x"):
        ax.set_xscale("log")
    ax.set_xlabel(spec["plot"]["xlabel"])
    ax.set_ylabel("success % (pooled; Wilson 95 % CI; dots: seeds)")
    ax.set_ylim(-2, 102)
    ax.set_title(textwrap.fill(spec["title"], 70), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


README = REPO / "experiments" / "README.md"
README_BEGIN = "<!-- reproductions table: written by python experiments/reproduce.py --update-readme -->"
README_END = "<!-- end of reproductions table -->"


def summary_table(spec_dir: Path = SPEC_DIR, results_root: Path = REPO / "experiments" / "results") -> str:
    """The markdown table of every reproduction: paper number, full-scale command, the CPU-scaled result (success
    with its Wilson 95 % interval per arm, from ``<results_root>/<name>/results.json``), its cost and provenance.
    Smoke results and reproductions without results say "not run yet". A row with results is titled with the spec
    recorded in them (the one that ran), so a spec changed since, e.g. for a rerun, does not relabel old numbers."""
    lines = ["| reproduction | paper's number | full-scale command | CPU-scaled result: success % (95 % CI), "
             "pooled over seeds | cost | provenance |", "|---|---|---|---|---|---|"]
    for path in sorted(spec_dir.glob("*.yaml")):
        spec = load_spec(path.stem, spec_dir)
        record_path = results_root / path.stem / "results.json"
        record = _json(record_path)
        command = f"`python experiments/reproduce.py {path.stem}`"
        if not record or record.get("smoke"):
            measured, cost, prov = "not run yet", spec.get("budget", "?"), "–"
        else:
            seeds = max((r["n_seeds"] for r in record["rows"]), default=0)
            measured = "; ".join(f"{r['arm']}: {r['pc_success']:.0f} ({r['ci95_low']:.0f}–{r['ci95_high']:.0f})"
                                 + (" UNVERIFIED" if r["unverified"] else "") for r in record["rows"])
            measured += f" — {seeds} seeds × {record['rows'][0]['episodes'] // max(1, seeds)} episodes"
            hw = record.get("hardware") or {}
            where = f"{hw.get('cpus', '?')} CPU cores" + (f", {', '.join(hw['gpus'])}" if hw.get("gpus") else "")
            cost = f"{record['compute_s'] / 3600:.1f} h of train/eval commands ({where})"
            rel = record_path.relative_to(REPO) if record_path.is_relative_to(REPO) else record_path
            prov = f"[{record['source']['commit'][:7]}]({Path(*rel.parts[1:]) if rel.parts[0] == 'experiments' else rel})"
        title = spec["title"] if measured == "not run yet" else (record.get("spec") or spec)["title"]
        lines.append(f"| {command}<br>{title} | {spec.get('paper', '')}: {spec.get('paper_result', '–')} | "
                     f"`{spec.get('full_scale', '–')}` | {measured} | {cost} | {prov} |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path = README) -> bool:
    """Replace the block between the reproductions-table markers of ``readme`` with :func:`summary_table`;
    returns whether the file changed.

    Raises:
        ValueError: the markers are missing.
    """
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme}: the markers {README_BEGIN!r} and {README_END!r} are missing")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_BEGIN}\n{summary_table()}{README_END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="experiments/reproductions/<name>.yaml, or a path to a spec file")
    p.add_argument("--list", action="store_true", help="list the reproductions and exit")
    p.add_argument("--update-readme", action="store_true",
                   help="rewrite the reproductions table of experiments/README.md from the results files and exit")
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "reproduce", help="where the runs go")
    p.add_argument("--results", type=Path, default=None,
                   help="where results.json, table.md/csv and plot.png go (default experiments/results/<name>)")
    p.add_argument("--jobs", type=int, default=1, help="commands run at a time (each gets cpus/jobs threads)")
    p.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--smoke", action="store_true", help="append the spec's smoke overrides (tiny runs)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="run from a dirty tree and tabulate runs that fail the provenance checks as UNVERIFIED")
    args = p.parse_args(argv)
    if not args.list and not args.update_readme and not args.name:
        p.error("name a reproduction (or --list, --update-readme)")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Train, evaluate and collect one reproduction; returns the results record (None with ``--list``).

    Raises:
        SourceStateError: dirty tree, or runs failing the provenance checks, without ``--allow-dirty``.
        RuntimeError: a command failed (the message names its log), or a run was started at another commit.
    """
    args = parse_args(argv)
    if args.update_readme:
        print(f"{README}: {'updated' if update_readme() else 'already up to date'}")
        return None
    if args.list:
        for path in sorted(SPEC_DIR.glob("*.yaml")):
            spec = load_spec(path.stem)
            print(f"{path.stem}: {spec['title']} — {spec.get('paper', '')}; budget: {spec.get('budget', '?')}")
        return None
    spec = load_spec(args.name)
    header = results_header(REPO, argv=sys.argv if argv is None else [__file__, *argv], allow_dirty=args.allow_dirty)
    head = (git_state(REPO) or {}).get("commit") if not args.allow_dirty else None
    out = args.out.resolve()
    results = (args.results or REPO / "experiments" / "results" / spec["name"]).resolve()
    runs, evals = plan(spec, out, smoke=args.smoke)
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // args.jobs)

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    print(f"[reproduce {spec['name']}] {len(runs)} training runs, {len(evals)} evaluations; runs in "
          f"{out / spec['run_group']}; {args.jobs} at a time, {threads} threads each", flush=True)
    # Every training at once, up to --jobs: runs sharing a dataset that does not exist yet wait for the one that
    # generates or converts it (LeRobotDataModule locks the dataset root).
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        trained = {r: pool.submit(do_train, r, args.accelerator, env, head) for r in runs}

        def evaluate(ev: EvalRun) -> str:
            if ev.train in trained:
                trained[ev.train].result()
            return do_eval(ev, args.accelerator, env)

        order = {r: i for i, r in enumerate(runs)}
        evaluated = [pool.submit(evaluate, e) for e in sorted(evals, key=lambda e: order.get(e.train, -1))]
        failures = []
        for future in [*trained.values(), *evaluated]:
            try:
                print(future.result(), flush=True)
            except RuntimeError as e:  # the others still run; all failures are reported together
                print(f"FAILED: {e}", flush=True)
                failures.append(str(e))
    if failures:
        raise RuntimeError(f"{len(failures)} command(s) failed (rerun the same command to retry them):\n  "
                           + "\n  ".join(failures))
    rows, records = summarize(spec, runs, evals, args.allow_dirty)
    results.mkdir(parents=True, exist_ok=True)
    record = {**finish_header(header), "reproduction": spec["name"], "smoke": args.smoke, "spec": spec,
              "jobs": args.jobs, "threads_per_command": threads, "rows": rows,
              "runs": records,
              "compute_s": round(sum((r["train"].get("seconds") or 0) + sum(e.get("seconds") or 0
                                                                             for e in r["evals"].values())
                                     for r in records.values()), 1)}
    (results / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    write_table(spec, rows, record, results / "table.md")
    write_csv(spec, rows, results / "table.csv")
    plot(spec, rows, results / "plot.png")
    print((results / "table.md").read_text())
    print(f"results: {results}")
    return record


if __name__ == "__main__":
    main()
