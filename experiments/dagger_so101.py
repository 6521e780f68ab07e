"""One DAgger round in the SO-101 sim, measured end to end from one resumable command (issue 18).

    python experiments/dagger_so101.py                  # the full round (~1 h on the 2-core CPU, printed first)
    python experiments/dagger_so101.py --smoke          # tiny steps and episodes (debug=smoke): checks the path
    python experiments/dagger_so101.py --demos clean --weak-steps 1000   # demonstrations without noise

Stages (every one skipped when its output is complete, so re-running the same command resumes):

1. **weak**: the main job (``experiment=so101_pick_place``: CPU Diffusion Policy on the 300 embedded scripted
   demonstrations, joints + environment state) trained for only ``--weak-steps`` steps (``callbacks=ema``: no
   rollouts during training; the exported model is the EMA, as in the main job); with ``--demos clean`` on
   demonstrations generated without the main job's DART noise and missed grasps (``<out>/clean_demos``), which
   show the expert's ideal path only, so the weak policy's mistakes lead to states they never visit;
2. **corrections**: ``eval.py`` deploys the weak policy in the simulator (``robot=sim_so101_pick_place``, 10 fps,
   ``dataset.realtime=false``) for ``--correction-episodes`` episodes seeded ``--correction-seed + i`` (not the
   evaluation seeds) with the scripted expert as the corrector (``teleop=scripted takeover=deviation``) and records
   only the frames it drove (``dataset.record_autonomous=false``);
3. **dagger**: the weak policy fine-tuned (``policy=finetune``) for ``--finetune-steps`` steps on demonstrations +
   corrections (``dataset=multi``, sampled in proportion to frames);
4. **control**: the weak policy fine-tuned the same way for the same steps on the demonstrations only, so the gain
   from the corrections is separated from the gain from more training;
5. every policy evaluated by ``eval.py env=so101_pick_place`` on the same ``--episodes`` episodes (episode i reset
   with ``1000 + i``, ``seed`` of ``conf/eval.yaml``).

Training and evaluation reuse ``experiments/reproduce.py`` (:func:`reproduce.do_train` with ``ckpt_path=auto`` in
fixed run folders ``<out>/<arm>/seed<seed>/``, ``train_done.json``; :func:`reproduce.do_eval`, ``eval_info.json``;
:func:`reproduce.summarize`: success with its Wilson 95 % interval and every run's provenance checks). The
corrections are done when ``<out>/corrections/corrections_done.json`` exists (an interrupted recording is deleted
and recorded again: it is seeded). A run folder started at another commit is refused (check that commit out, or
delete the folder); ``<out>/plan.json`` holds the parameters, and a rerun with other parameters into the same
``--out`` is refused.

Results (``--results``, default ``experiments/results/dagger_so101``; with ``--smoke`` ``<out>/results``), written
when every stage is done: ``results.json`` (:func:`robolearn.utils.provenance.results_header` of this invocation,
closed by :func:`~robolearn.utils.provenance.finish_header`; the parameters; one row per arm; the corrections: takeovers,
corrected frames, success of the corrected rollouts; dataset fingerprints of the demonstrations and corrections;
every run's commits, config and command durations), ``table.md``, ``table.csv`` and ``plot.png``. A dirty tree is
refused unless ``--allow-dirty`` (rows of runs failing the provenance checks are then marked ``UNVERIFIED``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO))

import reproduce as rep  # noqa: E402  (experiments/reproduce.py, next to this file)

from robolearn.utils.provenance import (  # noqa: E402
    dataset_fingerprint, finish_header, git_state, results_header,
)

NAME = "dagger_so101"
ARMS = ("weak", "dagger", "control")
CORRECTIONS_REPO_ID = "robolearn/dagger_so101_corrections"
DEMOS_REPO_ID = "robolearn/so101_pick_place_sim"
CORRECTIONS_DONE = "corrections_done.json"
# Cost model of the 2-core CPU (no other load): benchmarks/results/main_job.json and docs/main_job.md.
SECONDS_PER_TRAIN_STEP = 0.12  # diffusion_cpu, batch 64 (docs say ~0.1 s)
SECONDS_PER_COMMAND = 30.0  # process start, dataset loading, export
EVAL_STEPS_PER_S = 55.0  # eval.py, trained diffusion_cpu, batch 10
DEPLOY_STEPS_PER_S = 25.0  # eval.py robot=..., one env, a policy call every 2 steps (estimate)
MAX_EPISODE_STEPS = 300
DATA_GENERATION_S = 300.0  # the 300 embedded demonstrations, once (cached in data/)
DEMOS = ("noisy", "clean")
# --demos clean: the main job's dataset generated without DART noise and missed grasps, in its own folder
CLEAN_DEMOS_OVERRIDES = ("dataset.generator.action_noise=0.0", "dataset.generator.missed_grasps=0.0")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weak-steps", type=int, default=None,
                   help="training steps of the weak policy (default 400; 3 with --smoke)")
    p.add_argument("--finetune-steps", type=int, default=None,
                   help="fine-tuning steps of both the DAgger and the control arm (default 400; 3 with --smoke)")
    p.add_argument("--episodes", type=int, default=None,
                   help="evaluation episodes per arm, the same seeds for every arm (default 50; 2 with --smoke)")
    p.add_argument("--correction-episodes", type=int, default=None,
                   help="deployed episodes the expert corrects (default 50; 2 with --smoke)")
    p.add_argument("--correction-seed", type=int, default=2000,
                   help="deployed episode i is reset with this + i (default 2000: not the evaluation seeds 1000 + i)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="takeover=deviation's threshold, robot action units (conf/takeover/deviation.yaml)")
    p.add_argument("--hold-steps", type=int, default=10, help="steps the expert keeps control after a takeover")
    p.add_argument("--seed", type=int, default=1000, help="training seed of the three runs")
    p.add_argument("--demos", choices=DEMOS, default="noisy",
                   help="noisy (default): the main job's demonstrations (DART noise 0.3, a third with a missed grasp, "
                        "so they already show recoveries); clean: the expert's ideal path without noise or missed "
                        "grasps, generated into <out>/clean_demos: DAgger's own setting, where the learner's "
                        "mistakes lead to states no demonstration visits (Ross et al. 2011)")
    rep.add_run_options(p, NAME, "the runs")
    args = p.parse_args(argv)
    small = args.smoke
    for key, full, smoke in (("weak_steps", 400, 3), ("finetune_steps", 400, 3), ("episodes", 50, 2),
                             ("correction_episodes", 50, 2)):
        if getattr(args, key) is None:
            setattr(args, key, smoke if small else full)
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    rep.resolve_run_paths(args, NAME)
    return args


def estimate_seconds(weak_steps: int, finetune_steps: int, episodes: int, correction_episodes: int,
                     generate_data: bool = True) -> dict[str, float]:
    """Upper estimate of the CPU wall time of a round on the 2-core CPU, in seconds, per stage and ``total``:
    training at :data:`SECONDS_PER_TRAIN_STEP` plus :data:`SECONDS_PER_COMMAND` per command, evaluations and
    deployment as if every episode ran to the 300-step limit (a successful one ends in about 60-100 steps), and
    the demonstrations' generation when they are not cached yet."""
    train = lambda steps: SECONDS_PER_COMMAND + steps * SECONDS_PER_TRAIN_STEP  # noqa: E731
    est = {"data_generation": DATA_GENERATION_S if generate_data else 0.0,
           "train_weak": train(weak_steps), "train_dagger": train(finetune_steps),
           "train_control": train(finetune_steps),
           "corrections": SECONDS_PER_COMMAND + correction_episodes * MAX_EPISODE_STEPS / DEPLOY_STEPS_PER_S,
           "evals": 3 * (SECONDS_PER_COMMAND + episodes * MAX_EPISODE_STEPS / EVAL_STEPS_PER_S)}
    est["total"] = sum(est.values())
    return {k: round(v, 1) for k, v in est.items()}


def plan_runs(args: argparse.Namespace, demos_root: str | None) -> tuple[list[rep.TrainRun], list[rep.EvalRun]]:
    """The three training runs (``weak``, ``dagger``, ``control``) and their evaluations. ``demos_root`` (the weak
    run's dataset root, from its provenance) is needed for the fine-tuning runs; None plans the weak run only."""
    smoke = ["debug=smoke"] if args.smoke else []
    ckpt_every = max(1, min(200, args.weak_steps))
    clean = [f"dataset.root={clean_demos_root(args)}", *CLEAN_DEMOS_OVERRIDES] if args.demos == "clean" else []
    weak = rep.TrainRun("weak", args.seed, args.out / "weak" / f"seed{args.seed}", rep.merge_overrides(
        ["experiment=so101_pick_place", "callbacks=ema"], smoke, clean,
        [f"seed={args.seed}", f"trainer.max_steps={args.weak_steps}", f"trainer.val_check_interval={ckpt_every}"]))
    runs = [weak]
    if demos_root is not None:
        weak_model = weak.run_dir / "checkpoints" / "pretrained_model"
        demos = {"repo_id": DEMOS_REPO_ID, "root": demos_root}
        corrections = {"repo_id": CORRECTIONS_REPO_ID, "root": str(corrections_root(args))}
        every = max(1, min(200, args.finetune_steps))
        for arm, sources in (("dagger", [demos, corrections]), ("control", [demos])):
            listed = ", ".join(f"{{repo_id: {s['repo_id']}, root: '{s['root']}'}}" for s in sources)
            runs.append(rep.TrainRun(arm, args.seed, args.out / arm / f"seed{args.seed}", rep.merge_overrides(
                ["experiment=so101_pick_place", "callbacks=ema"], smoke,
                ["policy=finetune", f"policy.path={weak_model}", "dataset=multi", f"dataset.datasets=[{listed}]",
                 "dataset.batch_size=64", "dataset.num_workers=0", f"seed={args.seed}",
                 f"trainer.max_steps={args.finetune_steps}", f"trainer.val_check_interval={every}"])))
    evals = [rep.EvalRun(r.variant, r, r.run_dir / "evals" / r.variant, tuple(eval_overrides(args))) for r in runs]
    return runs, evals


def eval_overrides(args: argparse.Namespace) -> list[str]:
    """``eval.py`` overrides of every arm's evaluation: the SO-101 env, ``--episodes`` episodes, batch 10."""
    extra = ["env.max_episode_steps=30"] if args.smoke else []
    return ["env=so101_pick_place", f"eval.n_episodes={args.episodes}", f"eval.batch_size={min(10, args.episodes)}",
            *extra]


def clean_demos_root(args: argparse.Namespace) -> Path:
    """Where ``--demos clean`` generates its demonstrations."""
    return args.out / "clean_demos"


def demos_folder(args: argparse.Namespace) -> Path:
    """The demonstrations' folder before the weak run has recorded it (for the cost estimate): ``--demos clean``'s,
    or the main job's default cache ``data/so101_pick_place_sim``."""
    return clean_demos_root(args) if args.demos == "clean" else REPO / "data" / "so101_pick_place_sim"


def corrections_root(args: argparse.Namespace) -> Path:
    """Where the corrections dataset is recorded."""
    return args.out / "corrections" / "dataset"


def corrections_command(args: argparse.Namespace, weak: rep.TrainRun) -> list[str]:
    """``eval.py`` deploying the weak policy in the simulator as fast as it steps, with the scripted expert taking
    over on deviation and only its frames recorded."""
    smoke = ["dataset.episode_time_s=3", "robot.max_episode_steps=30"] if args.smoke else \
        [f"dataset.episode_time_s={MAX_EPISODE_STEPS / 10:g}"]
    return [sys.executable, "eval.py", f"policy.path={weak.run_dir / 'checkpoints' / 'pretrained_model'}",
            "robot=sim_so101_pick_place", "robot.camera=null", "dataset.fps=10", "dataset.realtime=false",
            "teleop=scripted", "takeover=deviation", f"takeover.threshold={args.threshold}",
            f"takeover.hold_steps={args.hold_steps}", "dataset.record_autonomous=false",
            f"eval.n_episodes={args.correction_episodes}", f"seed={args.correction_seed}",
            f"dataset.repo_id={CORRECTIONS_REPO_ID}", f"dataset.root={corrections_root(args)}",
            "keyboard_events=false", f"hydra.run.dir={args.out / 'corrections' / 'run'}",
            f"device={'cuda' if args.accelerator == 'gpu' else 'cpu'}", *smoke]


def do_corrections(args: argparse.Namespace, weak: rep.TrainRun, env: dict[str, str], head: str | None) -> str:
    """Record the corrections unless ``corrections_done.json`` exists; returns a one-line status.

    Raises:
        RuntimeError: the recording was done at another commit than ``head``, ``eval.py`` failed (names its log),
            or the expert took over in no episode (nothing to fine-tune on).
    """
    folder = args.out / "corrections"

    def some_takeover() -> None:
        if not json.loads((folder / "run" / "deploy_info.json").read_text()).get("intervention_frames"):
            raise RuntimeError(f"the expert took over in none of the {args.correction_episodes} episodes (threshold "
                               f"{args.threshold}): there is nothing to fine-tune on; lower --threshold or "
                               f"--weak-steps, and delete {folder}")

    seconds = rep.do_recording(folder, CORRECTIONS_DONE, corrections_root(args), corrections_command(args, weak), env,
                               head, check=some_takeover)
    if seconds is None:
        return f"{folder}: recorded (skipped)"
    info = json.loads((folder / "run" / "deploy_info.json").read_text())
    return f"{folder}: {info['intervention_frames']} corrected frames recorded in {seconds:.0f} s"


def corrections_summary(args: argparse.Namespace) -> dict[str, Any]:
    """The corrections stage: episodes, takeovers, corrected frames, episodes with a takeover, success of the
    corrected rollouts (%), the dataset's episodes, frames and fingerprint, the command and its seconds."""
    folder = args.out / "corrections"
    info = json.loads((folder / "run" / "deploy_info.json").read_text())
    meta = json.loads((corrections_root(args) / "meta" / "info.json").read_text())
    return {"episodes": len(info["episodes"]), "takeovers": sum(e["takeovers"] for e in info["episodes"]),
            "corrected_frames": info["intervention_frames"], "episodes_with_takeover": info["episodes_with_takeover"],
            "pc_success_with_corrections": info["pc_success"], "realtime": info.get("realtime"),
            "dataset": {"repo_id": CORRECTIONS_REPO_ID, "root": str(corrections_root(args)),
                        "total_episodes": meta.get("total_episodes"), "total_frames": meta.get("total_frames"),
                        "fingerprint": dataset_fingerprint(corrections_root(args))},
            **json.loads((folder / CORRECTIONS_DONE).read_text())}


def check_plan(args: argparse.Namespace) -> None:
    """Write ``<out>/plan.json`` (the parameters), or check that an existing one holds the same.

    Raises:
        RuntimeError: ``--out`` holds a round with other parameters (names them)."""
    keys = ("weak_steps", "finetune_steps", "episodes", "correction_episodes", "correction_seed", "threshold",
            "hold_steps", "seed", "smoke", "demos")
    params = {k: getattr(args, k) for k in keys}
    rep.check_plan_file(args.out, params, what="a round")


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    """The reproduce.py-shaped spec of the round (arms, plot), for :func:`reproduce.summarize` and
    :func:`reproduce.plot`."""
    return {"name": NAME, "title": f"One DAgger round, SO-101 pick-place sim: weak ({args.weak_steps} steps) vs "
                                   f"+{args.finetune_steps} steps on demos + corrections (DAgger) or demos only "
                                   f"(control){' [SMOKE]' if args.smoke else ''}",
            "paper": "Ross et al. 2011, DAgger (one aggregation round; the scripted expert corrects on deviation)",
            "paper_result": "(no paper number)", "seeds": [args.seed],
            "arms": [{"name": arm, "train": arm, "eval": []} for arm in ARMS],
            "plot": {"x": "arm", "xlabel": "arm", "log_x": False, "extra": []}}


def write_table(args: argparse.Namespace, rows: Sequence[dict[str, Any]], record: dict[str, Any], path: Path) -> None:
    """Markdown: X (weak), Y (DAgger) and the control with Wilson 95 % intervals, the corrections, provenance."""
    by = {r["arm"]: r for r in rows}
    c = record["corrections"]
    source = record["source"]
    lines = [f"# {'SMOKE RUN (tiny settings: checks the path, not a result): ' if args.smoke else ''}"
             "One DAgger round in the SO-101 pick-place sim", "",
             f"Collected at commit {source['commit'][:7]}{'' if source['clean'] else ' (dirty tree)'} by "
             f"`{record['command']}`; {args.episodes} evaluation episodes per arm on the same seeds (episode i reset "
             f"with 1000 + i); training seed {args.seed}; Wilson 95 % intervals.", "",
             "| arm | what | success % (95 % CI) [successes/episodes] | provenance |", "|---|---|---|---|"]
    what = {"weak": f"main job{' on clean demos' if args.demos == 'clean' else ''}, {args.weak_steps} steps (X)",
            "dagger": f"weak + {args.finetune_steps} steps on demos + corrections (Y)",
            "control": f"weak + {args.finetune_steps} steps on demos only"}
    for arm in ARMS:
        r = by[arm]
        prov = f"UNVERIFIED ({r['unverified']} run)" if r["unverified"] else "checked"
        lines.append(f"| {arm} | {what[arm]} | {r['pc_success']:.0f} ({r['ci95_low']:.0f}–{r['ci95_high']:.0f}) "
                     f"[{r['successes']}/{r['episodes']}] | {prov} |")
    lines += ["", f"DAgger − weak: {by['dagger']['pc_success'] - by['weak']['pc_success']:+.0f} points; "
                  f"DAgger − control: {by['dagger']['pc_success'] - by['control']['pc_success']:+.0f} points.", "",
              f"Corrections: {c['episodes']} deployed episodes (seeds {args.correction_seed} + i), "
              f"{c['takeovers']} takeovers in {c['episodes_with_takeover']} episodes, {c['corrected_frames']} "
              f"corrected frames recorded ({c['dataset']['total_episodes']} correction episodes; takeover=deviation, "
              f"threshold {args.threshold}, hold {args.hold_steps} steps); the corrected rollouts succeeded in "
              f"{c['pc_success_with_corrections']:.0f} %.", "",
              f"Datasets: demonstrations {record['datasets']['demonstrations']['fingerprint'][:12]}, corrections "
              f"{c['dataset']['fingerprint'][:12]} (SHA-256 content fingerprints, robolearn.utils.provenance).", "",
              f"Compute: {record['compute_s'] / 60:.1f} min of train/deploy/eval commands "
              f"({record['hardware'].get('cpus')} CPU cores).", ""]
    path.write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the round and write the results; returns the results record.

    Raises:
        SourceStateError: dirty tree, or runs failing the provenance checks, without ``--allow-dirty``.
        RuntimeError: a command failed (names its log), a run was started at another commit, ``--out`` holds a
            round with other parameters, or the expert took over in no episode.
    """
    args = parse_args(argv)
    header = results_header(REPO, argv=sys.argv if argv is None else [__file__, *argv], allow_dirty=args.allow_dirty)
    head = (git_state(REPO) or {}).get("commit") if not args.allow_dirty else None
    check_plan(args)
    est = estimate_seconds(args.weak_steps, args.finetune_steps, args.episodes, args.correction_episodes,
                           generate_data=not args.smoke and not (demos_folder(args) / "meta" / "info.json").is_file())
    print(f"[{NAME}] runs in {args.out}; results in {args.results}. Estimated cost on the 2-core CPU, at most "
          f"(episodes run to the 300-step limit): {est['total'] / 60:.0f} min "
          f"({', '.join(f'{k} {v / 60:.1f}' for k, v in est.items() if k != 'total')} min)", flush=True)
    cpus = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(cpus), "MKL_NUM_THREADS": str(cpus), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    weak_only, _ = plan_runs(args, None)
    weak = weak_only[0]
    print(rep.do_train(weak, args.accelerator, env, head), flush=True)
    demos_root = rep.dataset_root_of(weak)
    runs, evals = plan_runs(args, demos_root)
    print(rep.do_eval(evals[0], args.accelerator, env), flush=True)
    print(do_corrections(args, weak, env, head), flush=True)
    for run, ev in zip(runs[1:], evals[1:]):
        print(rep.do_train(run, args.accelerator, env, head), flush=True)
        print(rep.do_eval(ev, args.accelerator, env), flush=True)
    spec = spec_of(args)
    rows, records = rep.summarize(spec, runs, evals, args.allow_dirty)
    corrections = corrections_summary(args)
    compute = sum((r["train"].get("seconds") or 0) + sum(e.get("seconds") or 0 for e in r["evals"].values())
                  for r in records.values()) + corrections["seconds"]
    record = {**finish_header(header), "experiment": NAME, "smoke": args.smoke,
              "parameters": json.loads((args.out / "plan.json").read_text()), "estimate_s": est, "rows": rows,
              "corrections": corrections,
              "datasets": {"demonstrations": {"repo_id": DEMOS_REPO_ID, "root": demos_root,
                                              "fingerprint": dataset_fingerprint(demos_root)},
                           "corrections": corrections["dataset"]},
              "runs": records, "compute_s": round(compute, 1)}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    write_table(args, rows, record, args.results / "table.md")
    rep.write_csv(spec, rows, args.results / "table.csv")
    rep.plot(spec, rows, args.results / "plot.png")
    print((args.results / "table.md").read_text())
    print(f"results: {args.results}")
    return record


if __name__ == "__main__":
    main()
