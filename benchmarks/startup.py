"""Start-up and disk of ``python train.py`` against ``lerobot-train`` (Diffusion Policy, same config and data),
written to benchmarks/results/startup.json.

    python benchmarks/startup.py [--root ../shared/datasets/lerobot_written_pusht_random] [--steps 6]
        [--help-repeats 5] [--train-repeats 3] [--lerobot-train ../lerobot_venv/bin/lerobot-train]

Each command runs in a fresh interpreter (a subprocess), robolearn and lerobot alternated (ABBA order: the pair's
first command alternates between repeats, so neither always runs on the cache the other warmed); every value is
kept and the medians are reported. Times are wall-clock seconds from ``Popen`` to the event.

- ``--help``: ``python train.py --help`` vs ``lerobot-train --help`` (one untimed warm-up of each first: the first
  run reads the libraries from disk into the OS file cache).
- training: ``--steps`` steps of Diffusion Policy on the same lerobot-written dataset (``HF_HUB_OFFLINE=1``, CPU),
  batch ``--batch-size``, ``--workers`` DataLoader workers, lerobot's architecture set to robolearn's defaults
  (horizon 16, 2 observation steps, 8 action steps, 84×84 random crop, ResNet-18 with group norm and no
  pretrained weights: the torchvision download is offline-impossible). Reported: the wall time of the whole
  command, the time to the start of training (DataLoader built, before the first batch: robolearn's
  ``on_train_start`` as StartupTimer reports it, lerobot's ``Start offline training`` line: start-up without any
  training compute), the time to the end of the first training step (lerobot: its ``step:1`` line, ``--log_freq=1``;
  robolearn: the line of :class:`robolearn.callbacks.startup.StartupTimer`, one of the default callbacks), the
  time of each phase between the log lines both print, and the bytes and files each run leaves in its output dir
  with its default checkpointing (robolearn: ``conf/callbacks/default.yaml``; lerobot: a checkpoint at
  ``save_freq`` and after the last step), and the peak resident memory of the command's main process (saving a
  checkpoint of a 263 M-parameter model with its Adam state is the peak of both).
- robolearn's start-up by phase, in a fresh interpreter that repeats ``train.py``'s steps up to the first batch
  (``import train``, Hydra compose, DataModule build, policy import and build, Trainer build, first batch from
  the DataLoader), each timed: :func:`phases_child`.

The output dirs go to a temporary folder (``--workdir``) and are deleted once measured (a full-size Diffusion
checkpoint is gigabytes). The file carries the provenance of :func:`robolearn.utils.provenance.results_header`
(commit, refused on a dirty tree unless ``--allow-dirty``; command, hardware, versions, wall time, load average).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_ROOT = REPO.parent / "shared" / "datasets" / "lerobot_written_pusht_random"
DEFAULT_LEROBOT_TRAIN = REPO.parent / "lerobot_venv" / "bin" / "lerobot-train"

#: Parses the line of :class:`robolearn.callbacks.startup.StartupTimer` (its ``MESSAGE``).
LINE_PATTERN = re.compile(r"first training step \(global step (\d+)\) done ([0-9.]+) s after the (.+?) started; "
                          r"training started at ([0-9.na]+) s")

#: Log lines that mark phases of ``python train.py`` (first match of each, in order of appearance).
ROBOLEARN_MARKS = {
    "seed_set": r"Seed set to \d+",  # train(): imports and config composition done
    "trainer_built": r"GPU available: ",  # DataModule, policy and Trainer built
    "fit_called": r"provenance appended to ",  # just before trainer.fit
    "first_step": LINE_PATTERN.pattern,  # StartupTimer: first training step done
    "fit_stopped": r"`Trainer\.fit` stopped",  # max_steps reached (the final checkpoint and export follow)
}

#: Log lines that mark phases of ``lerobot-train`` (``lerobot/scripts/lerobot_train.py`` 0.6.1).
LEROBOT_MARKS = {
    "creating_dataset": r"Creating dataset",  # imports, config parsing done
    "creating_policy": r"Creating policy",
    "creating_optimizer": r"Creating optimizer and scheduler",
    "training_start": r"Start offline training",  # DataLoader built
    "first_step": r"\bstep:1 ",  # --log_freq=1: logged after the first update
    "checkpoint": r"Checkpoint policy after step",
    "end": r"End of training",
}

#: (phase name, mark it starts at or None for the process start, mark it ends at or None for the process exit).
ROBOLEARN_PHASES = [
    ("import_and_compose", None, "seed_set"),
    ("dataset_policy_trainer_build", "seed_set", "trainer_built"),
    ("provenance", "trainer_built", "fit_called"),
    ("fit_setup_and_first_step", "fit_called", "first_step"),
    ("remaining_steps", "first_step", "fit_stopped"),
    ("final_checkpoint_export_and_exit", "fit_stopped", None),
]
LEROBOT_PHASES = [
    ("import_and_parse", None, "creating_dataset"),
    ("dataset_build", "creating_dataset", "creating_policy"),
    ("policy_build", "creating_policy", "creating_optimizer"),
    ("optimizer_and_dataloader", "creating_optimizer", "training_start"),
    ("first_step", "training_start", "first_step"),
    ("remaining_steps", "first_step", "checkpoint"),
    ("final_checkpoint_and_exit", "checkpoint", None),
]


# --------------------------------------------------------------------------------------------- parsing helpers
def stamp_marks(timed_lines: Iterable[tuple[float, str]], marks: dict[str, str]) -> dict[str, float]:
    """Time of the first line matching each of ``marks`` (name -> regular expression).

    Args:
        timed_lines: ``(seconds since the command started, line)`` in order of arrival.
    Returns:
        name -> seconds, for the marks that matched (absent ones are left out).
    """
    compiled = {name: re.compile(rx) for name, rx in marks.items()}
    found: dict[str, float] = {}
    for t, line in timed_lines:
        for name, rx in compiled.items():
            if name not in found and rx.search(line):
                found[name] = t
    return found


def phases(stamps: dict[str, float], spec: Sequence[tuple[str, str | None, str | None]], wall_s: float
           ) -> dict[str, float | None]:
    """Seconds of each phase of ``spec`` from the stamps of :func:`stamp_marks` (None where a mark is missing).

    A start of None is the command's start (0 s), an end of None its exit (``wall_s``).
    """
    out: dict[str, float | None] = {}
    for name, start, end in spec:
        t0 = 0.0 if start is None else stamps.get(start)
        t1 = wall_s if end is None else stamps.get(end)
        out[name] = None if t0 is None or t1 is None else round(t1 - t0, 3)
    return out


def parse_startup_line(text: str) -> dict[str, Any] | None:
    """The first :class:`~robolearn.callbacks.startup.StartupTimer` line of a log, as
    ``{"global_step", "first_step_s", "train_start_s", "clock"}`` (seconds as the process measured them; ``clock``
    is ``"process"`` or ``"callback construction"``), or None when the log has none."""
    m = LINE_PATTERN.search(text)
    if m is None:
        return None
    start = m.group(4)
    return {"global_step": int(m.group(1)), "first_step_s": float(m.group(2)), "clock": m.group(3),
            "train_start_s": None if start == "nan" else float(start)}


def lerobot_param_count(text: str) -> int | None:
    """``num_total_params`` from a ``lerobot-train`` log, or None."""
    m = re.search(r"num_total_params=(\d+)", text)
    return int(m.group(1)) if m else None


def disk_usage(path: Path, largest: int = 6) -> dict[str, Any]:
    """Bytes and files under ``path``: symbolic links are counted as links (not followed, no bytes).

    Returns:
        ``{"bytes", "files", "symlinks", "largest": [[relative path, bytes], ...]}`` (``largest`` biggest files
        first); zeros when ``path`` does not exist.
    """
    sizes: list[tuple[int, str]] = []
    links = 0
    if path.exists():
        for p in path.rglob("*"):
            if p.is_symlink():
                links += 1
            elif p.is_file():
                sizes.append((p.stat().st_size, str(p.relative_to(path))))
    sizes.sort(reverse=True)
    return {"bytes": sum(s for s, _ in sizes), "files": len(sizes), "symlinks": links,
            "largest": [[name, size] for size, name in sizes[:largest]]}


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"median", "values"}`` of the measured values (None where a run did not produce one)."""
    present = [v for v in values if v is not None]
    return {"median": round(statistics.median(present), 3) if present else None, "values": list(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded to 3 decimals, None when either is missing or ``b`` is 0."""
    return round(a / b, 3) if a is not None and b else None


# ------------------------------------------------------------------------------------------------ running
def run_timed(cmd: Sequence[str], cwd: Path, env: dict[str, str], log_path: Path | None = None,
              timeout_s: float = 1800.0, usage: dict[str, Any] | None = None
              ) -> tuple[float, int, list[tuple[float, str]]]:
    """Run ``cmd`` with stdout and stderr merged, stamping each line with the seconds since ``Popen``.

    Args:
        usage: when given, receives ``max_rss_mib``: the peak resident memory of the command's own process (MiB,
            from ``wait4``; its DataLoader workers are not included), where the platform reports it.
    Returns:
        ``(wall seconds, return code, [(seconds, line), ...])``; the lines are also written to ``log_path``. A
        command killed by a signal returns its negative number (-9: SIGKILL, e.g. the out-of-memory killer).
    Raises:
        subprocess.TimeoutExpired: the command ran longer than ``timeout_s`` (it is killed first).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", bufsize=1)
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
        if time.perf_counter() - t0 > timeout_s:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(list(cmd), timeout_s)
    if hasattr(os, "wait4"):
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        if usage is not None:  # ru_maxrss is in KiB on Linux
            usage["max_rss_mib"] = round(rusage.ru_maxrss / 1024, 1)
    else:
        rc = proc.wait()
    wall = time.perf_counter() - t0
    if log_path is not None:
        log_path.write_text("".join(f"{t:9.3f} {line}\n" for t, line in lines))
    return wall, rc, lines


def child_env() -> dict[str, str]:
    """The environment of every measured command: offline Hub, unbuffered output, no W&B upload."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}


def robolearn_train_cmd(args: argparse.Namespace, out_dir: Path) -> list[str]:
    """``python train.py`` overrides for the benchmark's Diffusion run writing to ``out_dir``."""
    cmd = [sys.executable, "train.py", "experiment=none", "dataset=local", f"dataset.root={args.root}",
           "dataset.repo_id=bench/pusht_random", f"dataset.batch_size={args.batch_size}",
           f"dataset.num_workers={args.workers}", "dataset.val_fraction=0.0", "policy=diffusion", "trainer=cpu",
           f"trainer.max_steps={args.steps}", f"hydra.run.dir={out_dir}"]
    if args.down_dims:
        cmd.append(f"policy.down_dims=[{','.join(map(str, args.down_dims))}]")
    return cmd


def lerobot_train_cmd(args: argparse.Namespace, out_dir: Path) -> list[str]:
    """``lerobot-train`` arguments for the same run (robolearn's Diffusion defaults set explicitly)."""
    cmd = [str(args.lerobot_train), "--dataset.repo_id=bench/pusht_random", f"--dataset.root={args.root}",
           "--policy.type=diffusion", "--policy.push_to_hub=false", "--policy.device=cpu",
           "--policy.horizon=16", "--policy.n_obs_steps=2", "--policy.n_action_steps=8", "--policy.crop_shape=[84,84]",
           "--policy.pretrained_backbone_weights=null", "--policy.use_group_norm=true",
           f"--output_dir={out_dir}", f"--steps={args.steps}", f"--batch_size={args.batch_size}",
           f"--num_workers={args.workers}", "--env_eval_freq=0", "--log_freq=1", "--wandb.enable=false"]
    if args.down_dims:
        cmd.append(f"--policy.down_dims=[{','.join(map(str, args.down_dims))}]")
    return cmd


def measure_train(tool: str, args: argparse.Namespace, work: Path, index: int) -> dict[str, Any]:
    """One training run of ``tool`` (``robolearn`` or ``lerobot``): wall time, marks, phases, disk written."""
    out_dir = work / f"{tool}_{index}"
    log_path = work / f"{tool}_{index}.log"
    if tool == "robolearn":
        cmd, cwd, marks, spec = robolearn_train_cmd(args, out_dir), REPO, ROBOLEARN_MARKS, ROBOLEARN_PHASES
    else:
        cmd, cwd, marks, spec = lerobot_train_cmd(args, out_dir), work, LEROBOT_MARKS, LEROBOT_PHASES
    usage: dict[str, Any] = {}
    wall, rc, lines = run_timed(cmd, cwd, child_env(), log_path, usage=usage)
    text = "\n".join(line for _, line in lines)
    if rc != 0:
        raise RuntimeError(f"{tool} training exited with {rc}; log: {log_path}\n{text[-3000:]}")
    stamps = {k: round(v, 3) for k, v in stamp_marks(lines, marks).items()}
    record: dict[str, Any] = {"wall_s": round(wall, 3), "training_start_s": None,
                              "first_step_s": stamps.get("first_step"), "marks_s": stamps,
                              "phases_s": phases(stamps, spec, wall), "disk": disk_usage(out_dir),
                              "max_rss_mib": usage.get("max_rss_mib")}
    if tool == "robolearn":
        # on_train_start (DataLoaders built, before the first batch), in the process's own clock (its start is
        # within milliseconds of Popen)
        record["startup_timer"] = parse_startup_line(text)
        record["training_start_s"] = (record["startup_timer"] or {}).get("train_start_s")
    else:
        record["training_start_s"] = stamps.get("training_start")  # "Start offline training": DataLoader built
        record["params"] = lerobot_param_count(text)
    if not args.keep_outputs:
        shutil.rmtree(out_dir, ignore_errors=True)
    return record


def measure_help(tool: str, args: argparse.Namespace, work: Path) -> float:
    """Wall seconds of ``python train.py --help`` or ``lerobot-train --help``.

    Raises:
        RuntimeError: the command failed.
    """
    cmd = [sys.executable, "train.py", "--help"] if tool == "robolearn" else [str(args.lerobot_train), "--help"]
    wall, rc, lines = run_timed(cmd, REPO if tool == "robolearn" else work, child_env())
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {rc}: {' '.join(l for _, l in lines)[-2000:]}")
    return round(wall, 3)


def measure_phases(args: argparse.Namespace, work: Path, index: int) -> dict[str, Any]:
    """robolearn's start-up by phase in a fresh interpreter (:func:`phases_child`)."""
    out_dir = work / f"phases_{index}"
    overrides = [o for o in robolearn_train_cmd(args, out_dir)[2:] if not o.startswith("hydra.run.dir=")]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phases-child", str(out_dir), *overrides]
    wall, rc, lines = run_timed(cmd, REPO, child_env(), work / f"phases_{index}.log")
    results = [json.loads(line[len("PHASES "):]) for _, line in lines if line.startswith("PHASES ")]
    if rc != 0 or not results:
        raise RuntimeError(f"phases child exited with {rc}: {' '.join(l for _, l in lines)[-3000:]}")
    shutil.rmtree(out_dir, ignore_errors=True)
    return {**results[-1], "child_wall_s": round(wall, 3)}


def phases_child(out_dir: str, overrides: list[str]) -> None:
    """Repeat ``train.py``'s start-up in this (fresh) interpreter and print ``PHASES {json}``: seconds of the
    interpreter start (before this function), ``import train``, ``import lightning`` (0 when ``train`` imported
    it), Hydra compose (with argument checks), DataModule
    build (its features and stats read), policy module import, policy build, Trainer build (loggers, callbacks),
    and the first batch out of the training DataLoader (workers started); ``params`` of the policy."""
    from robolearn.utils.process_time import process_age_s  # stdlib only: nothing heavy is imported before

    age = process_age_s()
    marks: dict[str, float | None] = {"interpreter_start": None if age is None else round(age, 3)}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        marks[name] = round(now - t, 3)
        t = now

    sys.path.insert(0, str(REPO))
    import train  # noqa: PLC0415 - the import is what is timed

    lap("import_train")
    import lightning as L  # noqa: PLC0415 - train.py may import it lazily, in train(): timed apart

    lap("import_lightning")
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_object, instantiate
    from omegaconf import OmegaConf

    from robolearn.utils.arguments import check_node_arguments

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={out_dir}"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    for key in ("dataset", "policy", "augment"):
        if cfg.get(key) is not None:
            check_node_arguments(OmegaConf.to_container(cfg[key], resolve=True), key)
    lap("compose")
    datamodule = train.build_datamodule(cfg)
    features, stats = datamodule.features, datamodule.stats
    lap("dataset_build")
    get_object(cfg.policy._target_)
    lap("policy_import")
    policy = instantiate(cfg.policy, features=features, stats=stats)
    datamodule.set_delta_indices(policy.delta_indices)
    lap("policy_build")
    instantiate(cfg.trainer, logger=train.instantiate_group(cfg.get("logger")) or False,
                callbacks=train.instantiate_group(cfg.get("callbacks")))
    lap("trainer_build")
    datamodule.setup("fit")
    next(iter(datamodule.train_dataloader()))
    lap("first_batch")
    params = sum(p.numel() for p in policy.parameters())
    print("PHASES " + json.dumps({"phases_s": marks, "params": params}), flush=True)


def lerobot_version(lerobot_train: Path) -> str | None:
    """``lerobot``'s version in the interpreter next to ``lerobot-train``, or None."""
    python = lerobot_train.parent / "python"
    try:
        out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('lerobot'))"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--phases-child":  # internal: see measure_phases
        phases_child(sys.argv[2], sys.argv[3:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="lerobot-written dataset (v3.0) folder")
    p.add_argument("--lerobot-train", type=Path, default=DEFAULT_LEROBOT_TRAIN,
                   help="lerobot-train of a lerobot install (its own venv)")
    p.add_argument("--steps", type=int, default=6, help="training steps of each run")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of both tools")
    p.add_argument("--down-dims", type=int, nargs="+", default=None,
                   help="U-Net channels of both policies (default: both tools' default 512 1024 2048)")
    p.add_argument("--help-repeats", type=int, default=5, help="timed --help pairs")
    p.add_argument("--train-repeats", type=int, default=3, help="timed training pairs")
    p.add_argument("--phase-repeats", type=int, default=2, help="robolearn phase breakdowns (fresh interpreters)")
    p.add_argument("--workdir", type=Path, default=None, help="where runs write (default: a temporary folder)")
    p.add_argument("--keep-outputs", action="store_true", help="keep the runs' output dirs and logs")
    p.add_argument("--out", type=Path, default=HERE / "results" / "startup.json")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = p.parse_args()
    from robolearn.utils import provenance

    try:
        header = provenance.results_header(REPO, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/startup.py: {e}")
    if not args.lerobot_train.exists():
        sys.exit(f"benchmarks/startup.py: {args.lerobot_train} not found (--lerobot-train)")
    args.root = args.root.resolve()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="robolearn_startup_"))
    work.mkdir(parents=True, exist_ok=True)
    tools = ("robolearn", "lerobot")

    def order(i: int) -> tuple[str, ...]:
        return tools if i % 2 == 0 else tools[::-1]

    for tool in tools:  # untimed warm-up: the OS file cache
        measure_help(tool, args, work)
    helps: dict[str, list[float]] = {t: [] for t in tools}
    for i in range(args.help_repeats):
        for tool in order(i):
            helps[tool].append(measure_help(tool, args, work))
            print(f"--help {tool}: {helps[tool][-1]:.2f} s", flush=True)

    phase_runs = []
    for i in range(args.phase_repeats):
        phase_runs.append(measure_phases(args, work, i))
        print(f"robolearn phases: {phase_runs[-1]['phases_s']}", flush=True)

    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for i in range(args.train_repeats):
        for tool in order(i):
            r = measure_train(tool, args, work, i)
            runs[tool].append(r)
            print(f"train {tool}: wall {r['wall_s']:.1f} s, training start at {r['training_start_s']} s, first step "
                  f"at {r['first_step_s']} s, peak RSS {r['max_rss_mib']} MiB, "
                  f"{r['disk']['bytes'] / 1e9:.2f} GB in {r['disk']['files']} files", flush=True)

    def train_summary(tool: str) -> dict[str, Any]:
        rs = runs[tool]
        phase_names = list(rs[0]["phases_s"]) if rs else []
        return {"runs": rs,
                "wall_s": summary([r["wall_s"] for r in rs]),
                "training_start_s": summary([r["training_start_s"] for r in rs]),
                "first_step_s": summary([r["first_step_s"] for r in rs]),
                "phases_s_median": {n: summary([r["phases_s"][n] for r in rs])["median"] for n in phase_names},
                "disk_bytes": summary([r["disk"]["bytes"] for r in rs]),
                "disk_files": summary([r["disk"]["files"] for r in rs]),
                "max_rss_mib": summary([r["max_rss_mib"] for r in rs])}

    train_results = {t: train_summary(t) for t in tools}
    rl, lr = train_results["robolearn"], train_results["lerobot"]
    help_results = {t: summary(helps[t]) for t in tools}
    phase_names = list(phase_runs[0]["phases_s"]) if phase_runs else []
    record = {
        "benchmark": "startup",
        "dataset": args.root.name,
        "settings": {"policy": "diffusion", "steps": args.steps, "batch_size": args.batch_size,
                     "num_workers": args.workers, "device": "cpu", "horizon": 16, "n_obs_steps": 2,
                     "n_action_steps": 8, "crop_shape": [84, 84], "pretrained_backbone_weights": None,
                     "use_group_norm": True, "down_dims": args.down_dims or [512, 1024, 2048],
                     "help_repeats": args.help_repeats, "train_repeats": args.train_repeats,
                     "order": "ABBA (robolearn first in even repeats)"},
        "commands": {"robolearn_train": " ".join(robolearn_train_cmd(args, Path("<out>"))[1:]),
                     "lerobot_train": " ".join(lerobot_train_cmd(args, Path("<out>")))},
        **provenance.finish_header(header),
        "lerobot_version": lerobot_version(args.lerobot_train),
        "help": {**help_results,
                 "ratio_robolearn_to_lerobot": ratio(help_results["robolearn"]["median"],
                                                     help_results["lerobot"]["median"])},
        "train": {**train_results,
                  "ratios_robolearn_to_lerobot": {
                      "wall_s": ratio(rl["wall_s"]["median"], lr["wall_s"]["median"]),
                      "training_start_s": ratio(rl["training_start_s"]["median"], lr["training_start_s"]["median"]),
                      "first_step_s": ratio(rl["first_step_s"]["median"], lr["first_step_s"]["median"]),
                      "disk_bytes": ratio(rl["disk_bytes"]["median"], lr["disk_bytes"]["median"])}},
        "robolearn_phases": {"runs": phase_runs,
                             "median_s": {n: summary([r["phases_s"][n] for r in phase_runs])["median"]
                                          for n in phase_names},
                             "params": phase_runs[0]["params"] if phase_runs else None},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if not args.keep_outputs and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
