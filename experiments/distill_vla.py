"""Distil a VLA teacher into a small student in the SO-101 sim, from one resumable command (issue 22).

    python experiments/distill_vla.py                     # the full experiment (cost printed first)
    python experiments/distill_vla.py --teacher <pretrained_model>   # a trained VLA teacher instead of stage 1-2
    python experiments/distill_vla.py --smoke             # tiny steps and episodes (debug=smoke): checks the path

Stages (every one skipped when its output is complete, so re-running the same command resumes):

1. **vlm**: a tiny randomly initialised SmolVLM (``robolearn.policies.smolvla.tiny.write_tiny_smolvlm``, width
   ``--vlm-width``, ``--vlm-layers`` decoder layers, a word-level tokenizer) is written to ``<out>/teacher_vlm``:
   no Hub weights are reachable offline, so the teacher's VLM is not pretrained;
2. **teacher**: SmolVLA (``policy=smolvla`` with that VLM, trained whole, ``env_state_in_prefix=true``: it reads
   the task string, the joints and the privileged environment state, no camera) trained by ``train.py`` on the main
   job's data (``experiment=so101_pick_place callbacks=ema``: the 300 embedded scripted demonstrations) for
   ``--teacher-steps`` steps. With ``--teacher <dir>`` stages 1-2 are skipped and that export is the teacher
   (it must be a SmolVLA or π0-family policy);
3. **rollouts**: ``eval.py`` deploys the teacher in the simulator (``robot=sim_so101_pick_place``, 10 fps,
   ``dataset.realtime=false``, no camera) for ``--rollout-episodes`` episodes seeded ``--rollout-seed + i`` (not the
   evaluation seeds) and records every frame, successful or not, as a LeRobotDataset (the recording path of
   ``record.py``/``eval.py``): the student learns the teacher's actions on the teacher's own state distribution;
4. **student**: ``--student`` (default ``diffusion_cpu``, the main job's policy; ``act_cpu`` also works) trained by
   ``train.py`` on the rollouts only (``experiment=so101_pick_place callbacks=ema dataset.root=<rollouts>``) for
   ``--student-steps`` steps;
5. **evals**: teacher and student evaluated by ``eval.py env=so101_pick_place`` on the same ``--episodes``
   episodes (episode i reset with ``1000 + i``);
6. **latency**: each policy's ``select_action`` timed on the first ``--latency-chunks`` x ``n_action_steps`` frames
   of the rollouts (batch 1, ``--latency-threads`` torch threads, after ``--latency-warmup`` chunks): the
   calls that compute a new chunk (every ``n_action_steps``-th call after ``reset``) give p50/p90 per new chunk.

Training and evaluation reuse ``experiments/reproduce.py`` (:func:`reproduce.do_train` in fixed run folders
``<out>/<arm>/seed<seed>/`` with ``ckpt_path=auto``, ``train_done.json``; :func:`reproduce.do_eval`;
:func:`reproduce.summarize`: success with its Wilson 95 % interval and every run's provenance checks). The rollouts
are done when ``<out>/rollouts/rollouts_done.json`` exists (an interrupted recording is deleted and recorded again:
it is seeded); latency is done when ``<out>/latency.json`` exists. A run folder started at another commit is refused;
``<out>/plan.json`` holds the parameters, and a rerun with other parameters into the same ``--out`` is refused.

Results (``--results``, default ``experiments/results/distill_vla``; with ``--smoke`` ``<out>/results``), written
when every stage is done: ``results.json`` (:func:`robolearn.utils.provenance.results_header` of this invocation,
closed by :func:`~robolearn.utils.provenance.finish_header`; the parameters; one row per policy with success, Wilson
interval, latency and parameter count; the rollouts; dataset fingerprints; every run's commits, config and command
durations), ``table.md`` and ``table.csv``. A dirty tree is refused unless ``--allow-dirty`` (rows of runs failing the
provenance checks are then marked ``UNVERIFIED``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO))

import reproduce as rep  # noqa: E402  (experiments/reproduce.py, next to this file)

from robolearn.utils.provenance import (  # noqa: E402
    dataset_fingerprint, finish_header, git_state, results_header,
)

NAME = "distill_vla"
ARMS = ("teacher", "student")
ROLLOUTS_REPO_ID = "robolearn/distill_vla_teacher_rollouts"
ROLLOUTS_DONE = "rollouts_done.json"
LATENCY = "latency.json"
VLA_TYPES = ("SmolVLAPolicy", "Pi0Policy", "Pi05Policy")
# The teacher: a small SmolVLA on the state task (tokens: task words, one state token of joints + environment state;
# 10-action chunks, 2 executed; lr 3e-4 with a 200-step warmup, cosine decay to 1e-5 over the run).
TEACHER_CHUNK, TEACHER_ACTION_STEPS = 10, 2
# Cost model of the 2-core CPU without other load (docs/main_job.md; the teacher's step measured with 1 thread).
SECONDS_PER_TEACHER_STEP = 0.3  # tiny SmolVLA (width 64, 4 layers), batch 64
SECONDS_PER_STUDENT_STEP = 0.12  # diffusion_cpu, batch 64
SECONDS_PER_COMMAND = 30.0  # process start, dataset loading, export
EVAL_STEPS_PER_S = 40.0  # eval.py, batch 10 (the teacher is the slower)
DEPLOY_STEPS_PER_S = 25.0  # eval.py robot=..., one env (estimate)
MAX_EPISODE_STEPS = 300
DATA_GENERATION_S = 300.0  # the 300 embedded demonstrations, once (cached in data/)
LATENCY_FRAMES = 2000  # rollout frames read for the latency measurement


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; unset sizes get the full defaults, or the tiny ones with ``--smoke``.

    Raises:
        SystemExit: a size below 1, or ``--teacher`` not a folder (argparse's error).
    """
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, default=None,
                   help="a trained VLA export (pretrained_model folder) to distil instead of training one")
    p.add_argument("--teacher-steps", type=int, default=None, help="teacher training steps (default 3000; 3 smoke)")
    p.add_argument("--student-steps", type=int, default=None, help="student training steps (default 6000; 3 smoke)")
    p.add_argument("--student", default="diffusion_cpu", help="student policy config (conf/policy/<name>.yaml)")
    p.add_argument("--rollout-episodes", type=int, default=None,
                   help="teacher rollouts recorded for the student (default 300; 2 with --smoke)")
    p.add_argument("--rollout-seed", type=int, default=3000,
                   help="rollout i is reset with this + i (default 3000: not the evaluation seeds 1000 + i)")
    p.add_argument("--episodes", type=int, default=None,
                   help="evaluation episodes per policy, the same seeds for both (default 50; 2 with --smoke)")
    p.add_argument("--vlm-width", type=int, default=64, help="hidden size of the tiny random SmolVLM decoder")
    p.add_argument("--vlm-layers", type=int, default=4, help="decoder layers of the tiny SmolVLM (all kept)")
    p.add_argument("--latency-chunks", type=int, default=None,
                   help="new chunks timed per policy (default 100; 4 with --smoke)")
    p.add_argument("--latency-warmup", type=int, default=5, help="chunks computed before timing")
    p.add_argument("--latency-threads", type=int, default=1, help="torch threads while timing select_action")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP/MKL threads of the train/eval commands (default: the CPU count; 1 is faster for the "
                        "tiny teacher on a CPU shared with other jobs)")
    p.add_argument("--seed", type=int, default=1000, help="training seed of both runs")
    rep.add_run_options(p, NAME, "the runs")
    args = p.parse_args(argv)
    small = args.smoke
    for key, full, smoke in (("teacher_steps", 3000, 3), ("student_steps", 6000, 3), ("episodes", 50, 2),
                             ("rollout_episodes", 300, 2), ("latency_chunks", 100, 4)):
        if getattr(args, key) is None:
            setattr(args, key, smoke if small else full)
    for key in ("teacher_steps", "student_steps", "episodes", "rollout_episodes", "latency_chunks", "vlm_layers",
                "vlm_width", "latency_threads"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.teacher is not None:
        args.teacher = args.teacher.resolve()
        if not (args.teacher / "config.yaml").is_file() and not (args.teacher / "config.json").is_file():
            p.error(f"--teacher {args.teacher} is not an exported policy folder (no config.yaml / config.json)")
    rep.resolve_run_paths(args, NAME)
    return args


def estimate_seconds(teacher_steps: int | None, student_steps: int, episodes: int, rollout_episodes: int,
                     generate_data: bool = True) -> dict[str, float]:
    """Upper estimate of the wall time on the 2-core CPU without other load, in seconds, per stage and ``total``:
    training at :data:`SECONDS_PER_TEACHER_STEP` / :data:`SECONDS_PER_STUDENT_STEP` plus
    :data:`SECONDS_PER_COMMAND` per command (``teacher_steps=None``: a given teacher, not trained), evaluations and
    rollouts as if every episode ran to the 300-step limit, and the demonstrations' generation when they are not
    cached yet. A CPU shared with other jobs is slower by their share."""
    est = {"data_generation": DATA_GENERATION_S if generate_data else 0.0,
           "train_teacher": 0.0 if teacher_steps is None else
           SECONDS_PER_COMMAND + teacher_steps * SECONDS_PER_TEACHER_STEP,
           "rollouts": SECONDS_PER_COMMAND + rollout_episodes * MAX_EPISODE_STEPS / DEPLOY_STEPS_PER_S,
           "train_student": SECONDS_PER_COMMAND + student_steps * SECONDS_PER_STUDENT_STEP,
           "evals": 2 * (SECONDS_PER_COMMAND + episodes * MAX_EPISODE_STEPS / EVAL_STEPS_PER_S)}
    est["total"] = sum(est.values())
    return {k: round(v, 1) for k, v in est.items()}


def vlm_dir(args: argparse.Namespace) -> Path:
    """Folder of the teacher's tiny random SmolVLM (config, weights, tokenizer)."""
    return args.out / "teacher_vlm"


def teacher_overrides(args: argparse.Namespace) -> list[str]:
    """``policy=smolvla`` overrides of the teacher: the tiny VLM, trained whole, the environment state in the state
    token (6 joints + 15 environment values, padded to 24; 4-d actions, not padded), 10-action chunks with 2
    executed, lr 3e-4 (warmup of min(200, steps / 10), cosine decay over the run to 1e-5)."""
    return ["policy=smolvla", f"policy.vlm_model_name={vlm_dir(args)}", "policy.load_vlm_weights=true",
            "policy.env_state_in_prefix=true", f"policy.num_vlm_layers={args.vlm_layers}",
            "policy.train_expert_only=false", f"policy.chunk_size={TEACHER_CHUNK}",
            f"policy.n_action_steps={TEACHER_ACTION_STEPS}", "policy.max_state_dim=24", "policy.max_action_dim=4",
            "policy.optimizer_lr=3e-4",
            f"policy.scheduler_warmup_steps={min(200, max(1, args.teacher_steps // 10))}",
            f"policy.scheduler_decay_steps={args.teacher_steps}", "policy.scheduler_decay_lr=1e-5"]


def rollouts_root(args: argparse.Namespace) -> Path:
    """Where the teacher's rollouts are recorded."""
    return args.out / "rollouts" / "dataset"


def teacher_model(args: argparse.Namespace, runs: Sequence[rep.TrainRun]) -> Path:
    """The teacher's export: ``--teacher`` or the trained teacher run's ``pretrained_model``."""
    if args.teacher is not None:
        return args.teacher
    return next(r for r in runs if r.variant == "teacher").run_dir / "checkpoints" / "pretrained_model"


def plan_runs(args: argparse.Namespace) -> tuple[list[rep.TrainRun], list[rep.EvalRun]]:
    """The training runs (``teacher`` unless ``--teacher``, ``student``) and both evaluations (the given teacher's
    as a baseline arm with its ``policy.path``)."""
    smoke = ["debug=smoke"] if args.smoke else []
    runs = []
    if args.teacher is None:
        every = max(1, min(1000, args.teacher_steps))
        runs.append(rep.TrainRun("teacher", args.seed, args.out / "teacher" / f"seed{args.seed}", rep.merge_overrides(
            ["experiment=so101_pick_place", "callbacks=ema"], smoke, teacher_overrides(args),
            [f"seed={args.seed}", f"trainer.max_steps={args.teacher_steps}", f"trainer.val_check_interval={every}"])))
    every = max(1, min(1000, args.student_steps))
    runs.append(rep.TrainRun("student", args.seed, args.out / "student" / f"seed{args.seed}", rep.merge_overrides(
        ["experiment=so101_pick_place", "callbacks=ema"], smoke,
        [f"policy={args.student}", f"dataset.repo_id={ROLLOUTS_REPO_ID}", f"dataset.root={rollouts_root(args)}",
         "dataset.generator=null", f"seed={args.seed}", f"trainer.max_steps={args.student_steps}",
         f"trainer.val_check_interval={every}"])))
    common = tuple(eval_overrides(args))
    evals = [rep.EvalRun(r.variant, r, r.run_dir / "evals" / r.variant, common) for r in runs]
    if args.teacher is not None:
        evals.insert(0, rep.EvalRun("teacher", None, args.out / "teacher_given" / "evals" / "teacher",
                                    (f"policy.path={args.teacher}", *common)))
    return runs, evals


def eval_overrides(args: argparse.Namespace) -> list[str]:
    """``eval.py`` overrides of both evaluations: the SO-101 env, ``--episodes`` episodes, batch 10."""
    extra = ["env.max_episode_steps=30"] if args.smoke else []
    return ["env=so101_pick_place", f"eval.n_episodes={args.episodes}", f"eval.batch_size={min(10, args.episodes)}",
            *extra]


def rollouts_command(args: argparse.Namespace, teacher: Path) -> list[str]:
    """``eval.py`` deploying the teacher in the simulator as fast as it steps, recording every frame."""
    steps = 30 if args.smoke else MAX_EPISODE_STEPS
    return [sys.executable, "eval.py", f"policy.path={teacher}", "robot=sim_so101_pick_place", "robot.camera=null",
            f"robot.max_episode_steps={steps}", "dataset.fps=10", f"dataset.episode_time_s={steps / 10:g}",
            "dataset.realtime=false", f"eval.n_episodes={args.rollout_episodes}", f"seed={args.rollout_seed}",
            f"dataset.repo_id={ROLLOUTS_REPO_ID}", f"dataset.root={rollouts_root(args)}", "keyboard_events=false",
            f"hydra.run.dir={args.out / 'rollouts' / 'run'}",
            f"device={'cuda' if args.accelerator == 'gpu' else 'cpu'}"]


def check_teacher_is_vla(model: Path) -> str:
    """The class name of the export at ``model``.

    Raises:
        ValueError: it is not a SmolVLA / π0 / π0.5 policy (the teacher must be a VLA).
    """
    from robolearn.policies import load_policy

    name = type(load_policy(str(model))).__name__
    if name not in VLA_TYPES:
        raise ValueError(f"the teacher {model} is a {name}, not a VLA ({', '.join(VLA_TYPES)})")
    return name


def do_rollouts(args: argparse.Namespace, teacher: Path, env: dict[str, str], head: str | None) -> str:
    """Record the teacher's rollouts unless ``rollouts_done.json`` exists; returns a one-line status.

    Raises:
        RuntimeError: the recording was done at another commit than ``head``, or ``eval.py`` failed (names its log).
    """
    folder = args.out / "rollouts"
    seconds = rep.do_recording(folder, ROLLOUTS_DONE, rollouts_root(args), rollouts_command(args, teacher), env, head)
    if seconds is None:
        return f"{folder}: recorded (skipped)"
    info = json.loads((folder / "run" / "deploy_info.json").read_text())
    return f"{folder}: {len(info['episodes'])} teacher rollouts recorded in {seconds:.0f} s " \
           f"(success {info['pc_success']:.0f} %)"


def rollouts_summary(args: argparse.Namespace) -> dict[str, Any]:
    """The rollouts stage: episodes, the teacher's success on them (%), frames, the dataset's fingerprint, the
    command and its seconds."""
    folder = args.out / "rollouts"
    info = json.loads((folder / "run" / "deploy_info.json").read_text())
    meta = json.loads((rollouts_root(args) / "meta" / "info.json").read_text())
    return {"episodes": len(info["episodes"]), "pc_success_teacher": info["pc_success"],
            "realtime": info.get("realtime"),
            "dataset": {"repo_id": ROLLOUTS_REPO_ID, "root": str(rollouts_root(args)),
                        "total_episodes": meta.get("total_episodes"), "total_frames": meta.get("total_frames"),
                        "fingerprint": dataset_fingerprint(rollouts_root(args))},
            **json.loads((folder / ROLLOUTS_DONE).read_text())}


def latency_observations(root: str | Path, n: int) -> list[dict[str, Any]]:
    """The first ``n`` frames of the LeRobotDataset at ``root`` as single-frame batches: every
    ``observation.*`` state key ``(1, D)`` float32 and ``task`` ``[str]`` (cameras are not read; the policies here
    read none). Fewer frames than ``n`` are cycled.

    Raises:
        FileNotFoundError: ``root`` holds no ``data/*/*.parquet``.
    """
    import pyarrow.parquet as pq
    import torch

    files = sorted(Path(root).glob("data/*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}: no data/*/*.parquet")
    tasks_path = Path(root) / "meta" / "tasks.parquet"
    tasks = pq.read_table(tasks_path).to_pandas() if tasks_path.is_file() else None
    frames: list[dict[str, Any]] = []
    for f in files:
        df = pq.read_table(f).to_pandas()
        for _, row in df.iterrows():
            obs = {k: torch.as_tensor(row[k], dtype=torch.float32).reshape(1, -1) for k in df.columns
                   if k.startswith("observation.") and not k.startswith("observation.images")}
            task = None
            if tasks is not None and "task_index" in df.columns:
                match = tasks[tasks["task_index"] == row["task_index"]]
                task = str(match.index[0]) if len(match) else None
            obs["task"] = [task or ""]
            frames.append(obs)
            if len(frames) >= n:
                return frames
    return [frames[i % len(frames)] for i in range(n)]


def measure_latency(model: Path, observations: Sequence[dict[str, Any]], chunks: int, warmup: int,
                    threads: int) -> dict[str, Any]:
    """``select_action`` latency of the export at ``model`` on CPU, batch 1.

    The policy is reset, then fed the observations in order; with ``n_action_steps = k`` the calls 0, k, 2k, ...
    compute a new chunk. The first ``warmup`` chunks are not timed, then ``chunks`` are. Returns ``policy`` (class),
    ``parameters``, ``chunk_size``, ``n_action_steps``, ``threads``, ``new_chunk_s`` ``{p50, p90, mean}`` (seconds per
    call that computes a chunk), ``queued_action_s_p50`` (seconds per call that pops a queued action) and
    ``per_action_s`` (mean seconds per call over the timed calls).
    """
    import torch

    from robolearn.policies import load_policy

    torch.set_num_threads(threads)
    policy = load_policy(str(model)).to("cpu").eval()
    k = int(policy.n_action_steps)
    policy.reset()
    new, queued = [], []
    needed = (warmup + chunks) * k
    for i in range(needed):
        obs = observations[i % len(observations)]
        t0 = time.perf_counter()
        with torch.inference_mode():
            policy.select_action(obs)
        dt = time.perf_counter() - t0
        if i >= warmup * k:
            (new if i % k == 0 else queued).append(dt)
    q = statistics.quantiles(new, n=10) if len(new) > 1 else [new[0]] * 9
    return {"policy": type(policy).__name__, "parameters": sum(p.numel() for p in policy.parameters()),
            "chunk_size": int(getattr(policy, "chunk_size", 0) or policy.hparams.get("chunk_size") or
                              policy.hparams.get("horizon") or 0),
            "n_action_steps": k, "threads": threads, "chunks_timed": len(new),
            "new_chunk_s": {"p50": round(statistics.median(new), 5), "p90": round(q[8], 5),
                            "mean": round(statistics.fmean(new), 5)},
            "queued_action_s_p50": round(statistics.median(queued), 6) if queued else None,
            "per_action_s": round(statistics.fmean(new + queued), 5)}


def do_latency(args: argparse.Namespace, models: dict[str, Path], root: str) -> dict[str, Any]:
    """Time every policy on the frames of the dataset at ``root`` (the teacher's rollouts: states both policies
    meet) unless ``<out>/latency.json`` exists; returns ``{arm: measure_latency(...)}``."""
    path = args.out / LATENCY
    if path.is_file():
        print(f"{path}: measured (skipped)", flush=True)
        return json.loads(path.read_text())
    out = {}
    obs = latency_observations(root, LATENCY_FRAMES)  # cycled when a policy needs more calls
    for arm, model in models.items():
        out[arm] = measure_latency(model, obs, args.latency_chunks, args.latency_warmup, args.latency_threads)
        print(f"{arm}: select_action p50 {out[arm]['new_chunk_s']['p50'] * 1000:.1f} ms per new chunk", flush=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


def check_plan(args: argparse.Namespace) -> None:
    """Write ``<out>/plan.json`` (the parameters), or check that an existing one holds the same.

    Raises:
        RuntimeError: ``--out`` holds an experiment with other parameters (names them)."""
    keys = ("teacher", "teacher_steps", "student_steps", "student", "rollout_episodes", "rollout_seed", "episodes",
            "vlm_width", "vlm_layers", "latency_chunks", "latency_warmup", "latency_threads", "seed", "smoke")
    params = {k: (str(getattr(args, k)) if isinstance(getattr(args, k), Path) else getattr(args, k)) for k in keys}
    if args.teacher is not None:
        params["teacher_steps"] = None
    rep.check_plan_file(args.out, params)


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    """The reproduce.py-shaped spec (arms, csv columns), for :func:`reproduce.summarize` and
    :func:`reproduce.write_csv`."""
    return {"name": NAME, "title": f"VLA teacher distilled into {args.student}, SO-101 pick-place sim"
                                   f"{' [SMOKE]' if args.smoke else ''}",
            "paper": "(no paper: issue 22)", "paper_result": "(no paper number)", "seeds": [args.seed],
            "arms": [{"name": "teacher", "train": None if args.teacher else "teacher", "eval": []},
                     {"name": "student", "train": "student", "eval": []}],
            "plot": {"x": "arm", "xlabel": "arm", "log_x": False, "extra": []}}


def write_table(args: argparse.Namespace, rows: Sequence[dict[str, Any]], record: dict[str, Any], path: Path) -> None:
    """Markdown: teacher and student success with Wilson 95 % intervals, select_action latency, the rollouts,
    provenance."""
    by = {r["arm"]: r for r in rows}
    r_out = record["rollouts"]
    source = record["source"]
    teacher_what = f"given export {args.teacher}" if args.teacher else \
        f"SmolVLA, tiny random VLM (width {args.vlm_width}, {args.vlm_layers} layers), joints + environment state, " \
        f"{args.teacher_steps} steps on the scripted demos"
    what = {"teacher": teacher_what,
            "student": f"{args.student}, {args.student_steps} steps on {r_out['episodes']} teacher rollouts"}
    lines = [f"# {'SMOKE RUN (tiny settings: checks the path, not a result): ' if args.smoke else ''}"
             "VLA teacher vs distilled student, SO-101 pick-place sim", "",
             f"Collected at commit {source['commit'][:7]}{'' if source['clean'] else ' (dirty tree)'} by "
             f"`{record['command']}`; {args.episodes} evaluation episodes per policy on the same seeds (episode i "
             f"reset with 1000 + i); training seed {args.seed}; Wilson 95 % intervals. Latency: `select_action` on "
             f"CPU, batch 1, {args.latency_threads} thread(s), calls that compute a new chunk.", "",
             "| policy | what | parameters | success % (95 % CI) [successes/episodes] | select_action p50 per new "
             "chunk (ms) | actions per chunk | provenance |", "|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        r = by[arm]
        prov = f"UNVERIFIED ({r['unverified']} run)" if r["unverified"] else "checked"
        if arm == "teacher" and args.teacher is not None:
            prov = "given export: its training is not checked here"
        lines.append(f"| {arm} | {what[arm]} | {r['parameters']:,} | {r['pc_success']:.0f} ({r['ci95_low']:.0f}–"
                     f"{r['ci95_high']:.0f}) [{r['successes']}/{r['episodes']}] | {r['latency_p50_ms']:.1f} | "
                     f"{r['n_action_steps']} | {prov} |")
    lines += ["", f"Student − teacher: {by['student']['pc_success'] - by['teacher']['pc_success']:+.0f} points; "
                  f"latency ratio student/teacher per new chunk "
                  f"{by['student']['latency_p50_ms'] / max(1e-9, by['teacher']['latency_p50_ms']):.2f}.", "",
              f"Rollouts: {r_out['episodes']} teacher episodes (seeds {args.rollout_seed} + i), every frame recorded "
              f"({r_out['dataset']['total_frames']} frames); the teacher succeeded in "
              f"{r_out['pc_success_teacher']:.0f} % of them. Dataset fingerprint "
              f"{r_out['dataset']['fingerprint'][:12]} (SHA-256, robolearn.utils.provenance).", "",
              f"Compute: {record['compute_s'] / 60:.1f} min of train/deploy/eval commands "
              f"({record['hardware'].get('cpus')} CPU cores).", ""]
    path.write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the experiment and write the results; returns the results record.

    Raises:
        SourceStateError: dirty tree, or runs failing the provenance checks, without ``--allow-dirty``.
        RuntimeError: a command failed (names its log), a run was started at another commit, or ``--out`` holds an
            experiment with other parameters.
        ValueError: the teacher is not a VLA.
    """
    args = parse_args(argv)
    header = results_header(REPO, argv=sys.argv if argv is None else [__file__, *argv], allow_dirty=args.allow_dirty)
    head = (git_state(REPO) or {}).get("commit") if not args.allow_dirty else None
    check_plan(args)
    est = estimate_seconds(None if args.teacher else args.teacher_steps, args.student_steps, args.episodes,
                           args.rollout_episodes,
                           generate_data=not args.smoke and not (REPO / "data" / "so101_pick_place_sim" / "meta"
                                                                 / "info.json").is_file())
    print(f"[{NAME}] runs in {args.out}; results in {args.results}. Estimated cost on the 2-core CPU without other "
          f"load, at most (episodes run to the 300-step limit): {est['total'] / 60:.0f} min "
          f"({', '.join(f'{k} {v / 60:.1f}' for k, v in est.items() if k != 'total')} min)", flush=True)
    threads = str(args.threads or os.cpu_count() or 1)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    runs, evals = plan_runs(args)
    by_variant = {r.variant: r for r in runs}
    if args.teacher is None:
        if not (vlm_dir(args) / "config.json").is_file():
            from robolearn.policies.smolvla.tiny import write_tiny_smolvlm
            write_tiny_smolvlm(vlm_dir(args), seed=args.seed, hidden_size=args.vlm_width,
                               num_hidden_layers=args.vlm_layers)
            print(f"{vlm_dir(args)}: tiny random SmolVLM written", flush=True)
        else:
            print(f"{vlm_dir(args)}: written (skipped)", flush=True)
        print(rep.do_train(by_variant["teacher"], args.accelerator, env, head), flush=True)
        demos_root = rep.dataset_root_of(by_variant["teacher"])
    else:
        demos_root = None  # a given teacher: no demonstrations are used
    teacher = teacher_model(args, runs)
    teacher_class = check_teacher_is_vla(teacher)
    print(rep.do_eval(evals[0], args.accelerator, env), flush=True)
    print(do_rollouts(args, teacher, env, head), flush=True)
    print(rep.do_train(by_variant["student"], args.accelerator, env, head), flush=True)
    print(rep.do_eval(evals[-1], args.accelerator, env), flush=True)
    models = {"teacher": teacher,
              "student": by_variant["student"].run_dir / "checkpoints" / "pretrained_model"}
    latency = do_latency(args, models, str(rollouts_root(args)))
    spec = spec_of(args)
    rows, records = rep.summarize(spec, runs, evals, args.allow_dirty)
    for row in rows:
        lat = latency[row["arm"]]
        row.update({"policy": lat["policy"], "parameters": lat["parameters"], "chunk_size": lat["chunk_size"],
                    "n_action_steps": lat["n_action_steps"], "latency_p50_ms": 1000 * lat["new_chunk_s"]["p50"],
                    "latency_p90_ms": 1000 * lat["new_chunk_s"]["p90"],
                    "latency_per_action_ms": 1000 * lat["per_action_s"]})
    rollouts = rollouts_summary(args)
    compute = sum((r["train"].get("seconds") or 0) + sum(e.get("seconds") or 0 for e in r["evals"].values())
                  for r in records.values()) + rollouts["seconds"]
    record = {**finish_header(header), "experiment": NAME, "smoke": args.smoke,
              "parameters": json.loads((args.out / "plan.json").read_text()), "estimate_s": est,
              "teacher": {"model": str(teacher), "class": teacher_class, "given": args.teacher is not None,
                          "overrides": None if args.teacher else teacher_overrides(args)},
              "rows": rows, "latency": latency, "rollouts": rollouts,
              "datasets": {"demonstrations": None if demos_root is None else
                           {"root": demos_root, "fingerprint": dataset_fingerprint(demos_root)},
                           "rollouts": rollouts["dataset"]},
              "runs": records, "compute_s": round(compute, 1)}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    write_table(args, rows, record, args.results / "table.md")
    rep.write_csv(spec, rows, args.results / "table.csv")
    print((args.results / "table.md").read_text())
    print(f"results: {args.results}")
    return record


if __name__ == "__main__":
    main()
