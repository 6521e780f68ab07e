"""CPU-scaled reproduction: PushT Diffusion Policy (state) and the ACT chunk-size trend, end to end.

    python experiments/reproduce_cpu_scaled.py                                   # 2-core CPU, ~1-2 h
    python experiments/reproduce_cpu_scaled.py --accelerator gpu --jobs 8        # 16 cores + 1 GPU, minutes
    python experiments/reproduce_cpu_scaled.py --smoke --out /tmp/cpu_scaled     # a few steps, 2 episodes

Stages (each printed with its wall time):

0. **data**: converts the real PushT demonstrations (``../shared/datasets/pusht_cchi_v7_replay``) to
   ``data/pusht`` once (``train.py dry_run=true``), so the parallel jobs below do not race on it.
1. **train + eval jobs**, ``--jobs`` at a time, each a ``train.py`` run followed by ``eval.py`` on its exported
   ``pretrained_model`` in ``env=pusht_keypoints`` (``--eval-episodes`` episodes, seeds 1000...):

   a. Diffusion Policy, state observations, small U-Net (``experiment=cpu_scaled_pusht_diffusion_state``;
      Chi et al. 2023, Table 1 reports 0.95 / 0.91 success at full scale);
   b. ACT for each ``--chunks`` value x ``--seeds`` (``experiment=cpu_scaled_act_chunk``; the trend of Zhao et al.
      2023, Fig. 8(a)).

   Run folders are ``<out>/runs/diffusion_state/0`` and ``<out>/runs/act_chunk/<i>``, each with Hydra's
   ``.hydra/overrides.yaml``, ``csv/`` metrics, ``checkpoints/`` and the copied ``eval_info.json``.
2. **collect**: :mod:`experiments.collect` writes, labelled CPU-scaled, ``act_chunk_size.{md,csv,png}``,
   ``act_chunk_size_max_reward.{md,csv,png}`` and ``diffusion_state.{md,csv}`` under ``--out``.

``<out>/run_info.json`` records the machine (CPUs, GPU, library versions, git commit), every command with its
duration and exit code, the stage timings and the arguments. A failed command stops the script with its log path.

With ``--accelerator gpu`` training runs on the GPU (``trainer.accelerator=gpu``) and eval on ``device=cuda``;
every job gets ``OMP_NUM_THREADS = max(1, cpus // jobs)``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import collect  # noqa: E402  (experiments/collect.py, next to this file)

LABEL = "CPU-scaled"


@dataclass
class Command:
    """One subprocess: its argv, log file, wall time (s) and exit code."""

    argv: list[str]
    log: str
    duration_s: float | None = None
    returncode: int | None = None


@dataclass
class Job:
    """A train run and its evaluation: ``name``, run folder, the commands in order."""

    name: str
    run_dir: str
    commands: list[Command] = field(default_factory=list)


def _run(cmd: Command, env: dict[str, str]) -> Command:
    Path(cmd.log).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(cmd.log, "w") as log:
        proc = subprocess.run(cmd.argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    cmd.duration_s, cmd.returncode = round(time.perf_counter() - t0, 1), proc.returncode
    return cmd


def _run_job(job: Job, env: dict[str, str]) -> Job:
    for cmd in job.commands:
        _run(cmd, env)
        print(f"  [{job.name}] {Path(cmd.argv[1]).name}: {cmd.duration_s:.0f} s, exit {cmd.returncode}", flush=True)
        if cmd.returncode != 0:
            return job
    info = Path(job.run_dir) / "eval" / "eval_info.json"
    shutil.copy(info, Path(job.run_dir) / "eval_info.json")
    return job


def _train_eval_job(name: str, run_dir: Path, overrides: Sequence[str], args: argparse.Namespace) -> Job:
    """``train.py`` with ``overrides`` into ``run_dir``, then ``eval.py`` on its export into ``run_dir/eval``."""
    py = sys.executable
    train = [py, "train.py", *overrides, f"trainer.accelerator={args.accelerator}", f"hydra.run.dir={run_dir}",
             "callbacks.progress_bar=null", "ckpt_path=null", *args.train_overrides]
    evaluate = [py, "eval.py", f"policy.path={run_dir}/checkpoints/pretrained_model", "env=pusht_keypoints",
                f"eval.n_episodes={args.eval_episodes}", f"eval.batch_size={min(10, args.eval_episodes)}",
                "eval.progress=false", "eval.max_episodes_rendered=0", f"hydra.run.dir={run_dir}/eval",
                "hydra.output_subdir=null",  # no .hydra/ here: collect.py treats .hydra folders as runs
                f"device={'cuda' if args.accelerator == 'gpu' else 'cpu'}"]
    logs = run_dir.parent / "logs"
    return Job(name, str(run_dir), [Command(train, str(logs / f"{run_dir.name}_train.log")),
                                    Command(evaluate, str(logs / f"{run_dir.name}_eval.log"))])


def build_jobs(args: argparse.Namespace, out: Path) -> list[Job]:
    """The diffusion job first (the longest), then one ACT job per (chunk size, seed)."""
    suffix = "_smoke" if args.smoke else ""
    diff = [f"experiment=cpu_scaled_pusht_diffusion_state{suffix}", f"seed={args.seeds[0]}"]
    if args.diffusion_steps:
        diff += [f"trainer.max_steps={args.diffusion_steps}", f"trainer.val_check_interval={args.diffusion_steps}"]
    jobs = [_train_eval_job("diffusion_state", out / "runs" / "diffusion_state" / "0", diff, args)]
    i = 0
    for chunk in args.chunks:
        for seed in args.seeds:
            ov = [f"experiment=cpu_scaled_act_chunk{suffix}", f"policy.chunk_size={chunk}", f"seed={seed}"]
            if args.act_steps:
                ov += [f"trainer.max_steps={args.act_steps}", f"trainer.val_check_interval={args.act_steps}"]
            jobs.append(_train_eval_job(f"act_chunk{chunk}_seed{seed}", out / "runs" / "act_chunk" / str(i), ov, args))
            i += 1
    return jobs


def collect_results(out: Path, smoke: bool) -> dict[str, str]:
    """Tables (markdown + CSV) of success and max coverage for both experiments, and plots of the ACT sweep;
    returns ``{file name: path}``."""
    tag = f"{LABEL}{' smoke' if smoke else ''}"
    experiments = (("act_chunk", "act_chunk_size", "policy.chunk_size", f"ACT chunk size on PushT (state), {tag}", True),
                   ("diffusion_state", "diffusion_state", "experiment",
                    f"Diffusion Policy PushT (state, small U-Net), {tag}", False))
    written: dict[str, str] = {}
    for folder, stem, key, title, plot in experiments:
        if not (out / "runs" / folder).is_dir():  # e.g. --chunks "" runs no ACT job
            continue
        for metric, suffix in (("eval/pc_success", ""), ("eval/avg_max_reward", "_max_reward")):
            rows = collect.summarize(collect.load_multirun(out / "runs" / folder, metric), metric, [key])
            name = f"{stem}{suffix}"
            written[f"{name}.md"] = str(collect.write_table(rows, metric, out / f"{name}.md", title))
            written[f"{name}.csv"] = str(collect.write_csv(rows, out / f"{name}.csv"))
            if plot:
                written[f"{name}.png"] = str(collect.plot_sweep(rows, metric, out / f"{name}.png", title))
    return written


def machine_info() -> dict:
    """CPUs, GPU, platform, library versions and git commit of this checkout."""
    import torch

    def _git(*a: str) -> str | None:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
    }


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "cpu_scaled",
                   help="output folder (runs, logs, tables, plots, run_info.json)")
    p.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--jobs", type=int, default=2, help="train+eval jobs run in parallel")
    p.add_argument("--chunks", type=_ints, default=[1, 10, 50], help="ACT chunk sizes, e.g. 1,10,50")
    p.add_argument("--seeds", type=_ints, default=[1000, 1001], help="seeds of the ACT runs (first: diffusion)")
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--diffusion-steps", type=int, default=None, help="override the experiment's trainer.max_steps")
    p.add_argument("--act-steps", type=int, default=None, help="override the experiment's trainer.max_steps")
    p.add_argument("--smoke", action="store_true",
                   help="*_smoke experiments (10 steps), 2 eval episodes, chunks 1,10, one seed")
    p.add_argument("--force", action="store_true", help="delete an existing --out/runs first")
    p.add_argument("--train-overrides", nargs="*", default=[],
                   help="extra Hydra overrides for every train.py run, e.g. dataset.root=/data/pusht dataset.generator=null")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.eval_episodes < 1:
        p.error(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    if args.smoke:
        args.eval_episodes, args.chunks, args.seeds = 2, args.chunks[:2], args.seeds[:1]
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Run all stages; returns the ``run_info`` dict (also written to ``<out>/run_info.json``).

    Raises:
        FileExistsError: ``<out>/runs`` exists (rerun with ``--force`` or another ``--out``).
        SystemExit: a command failed (its log is named).
    """
    args = parse_args(argv)
    out = args.out.resolve()
    if (out / "runs").exists():
        if not args.force:
            raise FileExistsError(f"{out / 'runs'} exists; pass --force to replace it or choose another --out")
        shutil.rmtree(out / "runs")
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    info: dict = {"label": LABEL, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                  "machine": machine_info(), "threads_per_job": threads, "stages": {}, "jobs": []}
    t_all = time.perf_counter()

    def save() -> None:
        info["total_s"] = round(time.perf_counter() - t_all, 1)
        (out / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")

    print(f"[{LABEL}] out={out} accelerator={args.accelerator} jobs={args.jobs} threads/job={threads}", flush=True)
    t0 = time.perf_counter()
    suffix = "_smoke" if args.smoke else ""
    prep = _run(Command([sys.executable, "train.py", f"experiment=cpu_scaled_act_chunk{suffix}", "dry_run=true",
                         "logger=none", f"hydra.run.dir={out}/runs/prepare_data", *args.train_overrides],
                        str(out / "runs" / "logs" / "data.log")),
                env)
    info["stages"]["data_s"] = round(time.perf_counter() - t0, 1)
    info["jobs"].append({"name": "prepare_data", "commands": [asdict(prep)]})
    print(f"stage data: {info['stages']['data_s']:.0f} s", flush=True)
    if prep.returncode != 0:
        save()
        raise SystemExit(f"data preparation failed, see {prep.log}")

    t0 = time.perf_counter()
    jobs = build_jobs(args, out)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda j: _run_job(j, env), jobs))
    info["stages"]["train_eval_s"] = round(time.perf_counter() - t0, 1)
    info["jobs"] += [{"name": j.name, "run_dir": j.run_dir, "commands": [asdict(c) for c in j.commands]} for j in done]
    print(f"stage train+eval: {info['stages']['train_eval_s']:.0f} s", flush=True)
    failed = [c.log for j in done for c in j.commands if c.returncode not in (0, None)]
    if failed:
        save()
        raise SystemExit(f"{len(failed)} command(s) failed, see {failed}")

    t0 = time.perf_counter()
    info["outputs"] = collect_results(out, args.smoke)
    info["stages"]["collect_s"] = round(time.perf_counter() - t0, 1)
    print(f"stage collect: {info['stages']['collect_s']:.0f} s", flush=True)
    save()
    for name in ("diffusion_state.md", "act_chunk_size.md", "act_chunk_size_max_reward.md"):
        print((out / name).read_text())
    print(f"total: {info['total_s']:.0f} s; run_info: {out / 'run_info.json'}")
    return info


if __name__ == "__main__":
    main()
