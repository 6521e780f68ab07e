"""HIL-SERL's learning curve on the simulated SO-101, measured end to end from one resumable command (issue 18).

    python experiments/hil_serl_so101.py                  # the full run (cost printed first)
    python experiments/hil_serl_so101.py --smoke          # tiny run (debug=smoke): checks the path
    python experiments/hil_serl_so101.py --reward classifier   # the reward from a learned success classifier
    python experiments/hil_serl_so101.py --reward classifier --classifier-only   # stage 0 alone (e.g. on a core
                                                                                # that is free now); rerun without it

Stages (each skipped when its output is complete, so re-running the same command resumes):

0. **reward classifier** (``--reward classifier`` only): ``train.py policy=reward_classifier`` (HIL-SERL's learned
   reward: a resnet10t on the camera plus the joints, BCE with ``policy.pos_weight`` :data:`CLASSIFIER_POS_WEIGHT`
   on the previous frame's ``next.success``, ``policy.label_offset=-1``, so that a positive observation shows the
   success; each demonstration goes on :data:`CLASSIFIER_STEPS_AFTER_SUCCESS` steps after it) for
   ``--classifier-steps`` steps on scripted demonstrations recorded with the
   ``workspace`` camera rendered without the arm (``dataset=so101_pick_place_sim_camera`` with ``show_robot=false``,
   generated into ``<out>/classifier_demos``): without the arm's 400k triangles a frame costs ~2 ms instead of
   ~40 ms in software rendering, which the actor pays at every step. The block, the goal and the table are in the
   image; whether the jaws have let go (the simulator's success needs it) comes from the joints. Run folder
   ``<out>/reward_classifier/seed<seed>/``;
1. **train**: ``train.py experiment=hil_serl_so101_sim role=both`` for ``--updates`` learner updates: the SAC
   learner and one actor subprocess stepping ``RobotEnv`` over the simulated arm (the ``Robot`` interface), the
   scripted pick-place expert taking over after 3 deviating steps (Luo et al. 2024's human, played by a script),
   each takeover costing the policy RLIF's intervention reward (``--intervention-penalty``; the experiment's 1.0 by
   default, 0 for HIL-SERL's sparse reward alone). With ``--reward classifier`` the actor's env renders the same
   arm-less camera and its reward and success come from the classifier (``robolearn.rl.robot_env.ClassifierReward``,
   success at probability >= 0.5, which ends the episode); the simulator still ends an episode it judges
   successful, and every episode also logs the simulator's own verdict (``env/sim_success``). SAC itself reads
   only the state, as with the simulator's reward. Run folder ``<out>/hil_serl/seed<seed>/`` (``ckpt_path=auto``,
   ``train_done.json``; the replay buffers are restored from the last checkpoint on resume). Every actor episode
   is one row of the learner's ``csv/version_*/metrics.csv`` (``env/success``, ``env/intervention_rate``,
   ``env/episode_length``).
2. **evaluate**: the exported policy alone (no expert, no takeover) by ``eval.py env=robot_so101_sim`` in the same
   state-only env (:data:`STATE_ENV`) on ``--episodes`` episodes (episode i reset with ``1000 + i``).

The curve splits the actor's episodes, in order, into windows of ``--window`` episodes and gives per window: the
success rate with its Wilson 95 % interval (the simulator's success, also when the classifier gave the reward;
interventions included: the expert may have finished the episode), the
mean intervention rate (the fraction of steps the expert drove), and the autonomous success rate (episodes that
succeeded with no intervention at all). HIL-SERL's claim, as in its paper's curves: success rises while the
intervention rate falls. With the classifier, ``reward_agreement`` counts the actor's episodes by (classifier
success, simulator success): how often the learned reward was right.

Results (``--results``, default ``experiments/results/hil_serl_so101``; with ``--smoke`` ``<out>/results``):
``results.json`` (:func:`robolearn.utils.provenance.results_header` of this invocation closed by
:func:`~robolearn.utils.provenance.finish_header`; the parameters; the windows; the per-episode log; the final
evaluation row (``rows``); the run's commits, config and durations), ``curve.csv`` (the windows), ``table.csv``
(the final evaluation), ``table.md`` and ``plot.png``. A dirty
tree is refused unless ``--allow-dirty`` (the evaluation row of a run failing the provenance checks is then
marked ``UNVERIFIED``). A run folder started at another commit is refused; ``<out>/plan.json`` holds the
parameters, and a rerun with other parameters into the same ``--out`` is refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO))

import reproduce as rep  # noqa: E402  (experiments/reproduce.py, next to this file)

from robolearn.eval.metrics import wilson_interval  # noqa: E402
from robolearn.utils.provenance import finish_header, git_state, results_header  # noqa: E402

NAME = "hil_serl_so101"
# The actor's episode limit (conf/dataset/hil_serl_so101_sim.yaml: env_kwargs.robot.max_episode_steps), kept by the
# evaluation.
EPISODE_STEPS = 200
# conf/env/robot_so101_sim.yaml made into the env the learner's actor steps (conf/dataset/hil_serl_so101_sim.yaml):
# no camera, the simulator's 15 environment-state values, 200-step (20 s) episodes as the actor's; no teleoperator,
# so no takeover.
STATE_ENV = ("env=robot_so101_sim", "env.make.robot.camera=null", "+env.make.cameras=false",
             "+env.make.environment_state=true", "~env.features_map.pixels",
             "+env.features_map.environment_state=observation.environment_state",
             f"env.max_episode_steps={EPISODE_STEPS}")
# Cost model of the 2-core CPU, learner and actor sharing it (one torch thread each, roles.split_threads): 8,000-update
# probes ran at 0.023-0.03 s per update alone (eval.py stepped the env at 40 steps/s).
SECONDS_PER_UPDATE = 0.03
SECONDS_PER_COMMAND = 40.0
EVAL_STEPS_PER_S = 40.0
REWARDS = ("sim", "classifier")
# The classifier's data: each demonstration goes on for CLASSIFIER_STEPS_AFTER_SUCCESS steps after the simulator's
# success (lerobot's number_of_steps_after_success), and frame t is labelled with frame t-1's next.success
# (policy.label_offset=-1): the observations that show the success are the positives, and the last observation
# before it (jaws half open over the goal) is a negative. The reward wrapper asks about the observation after each
# step, which is what this label describes. Labelled with its own next.success (offset 0, no steps after, as at
# dd0e342) the classifier fired on that half-open frame, one step before the simulator's success, and ended 302 of
# 330 actor episodes as false successes (experiments/results/hil_serl_so101_classifier at e107ba9).
CLASSIFIER_STEPS_AFTER_SUCCESS = 5
CLASSIFIER_LABEL_OFFSET = -1
# About 5 positives in ~64 frames per demonstration: positives weighted up, less than the 12:1 ratio (a classifier
# that fires early ends the actor's episodes before the jaws let go, and the policy would learn to stop there).
CLASSIFIER_POS_WEIGHT = 3.0
CLASSIFIER_CAMERA = "workspace"
CLASSIFIER_IMAGE_KEY = f"observation.images.{CLASSIFIER_CAMERA}"
CLASSIFIER_BATCH_SIZE = 32
# Cost model of the classifier stages (2-core CPU): resnet10t at 96x96 and batch 32 (0.53 s per step measured with
# another job on the second core), and the 300 demonstrations without the arm in the image.
SECONDS_PER_CLASSIFIER_STEP = 0.4
CLASSIFIER_DEMOS_S = 240.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=None,
                   help="learner updates (trainer.max_steps; default 20000; 12 with --smoke)")
    p.add_argument("--episodes", type=int, default=None,
                   help="evaluation episodes of the final policy without the expert (default 50; 2 with --smoke)")
    p.add_argument("--window", type=int, default=None,
                   help="actor episodes per point of the curve (default 20; 1 with --smoke)")
    p.add_argument("--seed", type=int, default=1000, help="training seed (the actor's env seed is seed + 1)")
    p.add_argument("--reward", choices=REWARDS, default="sim",
                   help="the actor's reward: the simulator's (default) or a reward classifier trained first (stage 0)")
    p.add_argument("--classifier-steps", type=int, default=None,
                   help="reward classifier training steps with --reward classifier (default 1500; 4 with --smoke)")
    p.add_argument("--classifier-only", action="store_true",
                   help="with --reward classifier: train the classifier (stage 0) and stop; the same command without "
                        "this flag skips it and goes on")
    p.add_argument("--intervention-penalty", type=float, default=None,
                   help="RLIF's reward for the policy's action at each takeover (actor.intervention_penalty; default: "
                        "the experiment's, 1.0; 0: HIL-SERL's sparse reward alone)")
    rep.add_run_options(p, NAME, "the run")
    args = p.parse_args(argv)
    for key, full, smoke in (("updates", 20000, 12), ("episodes", 50, 2), ("window", 20, 1),
                             ("classifier_steps", 1500, 4)):
        if getattr(args, key) is None:
            setattr(args, key, smoke if args.smoke else full)
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.reward != "classifier":
        args.classifier_steps = None
        if args.classifier_only:
            p.error("--classifier-only needs --reward classifier")
    if args.intervention_penalty is not None and not args.intervention_penalty >= 0:
        p.error(f"--intervention-penalty must be >= 0, got {args.intervention_penalty}")
    rep.resolve_run_paths(args, NAME)
    return args


def estimate_seconds(updates: int, episodes: int, classifier_steps: int | None = None) -> dict[str, float]:
    """Estimate of the wall time on the 2-core CPU, in seconds: ``classifier`` (with ``classifier_steps``: the
    demonstrations and :data:`SECONDS_PER_CLASSIFIER_STEP` per step), ``train`` (:data:`SECONDS_PER_UPDATE` per
    learner update, the actor running beside it, plus start-up), ``eval`` (every episode run to its 200-step limit)
    and ``total``."""
    est = {"train": SECONDS_PER_COMMAND + updates * SECONDS_PER_UPDATE,
           "eval": SECONDS_PER_COMMAND + episodes * EPISODE_STEPS / EVAL_STEPS_PER_S}
    if classifier_steps:
        est["classifier"] = SECONDS_PER_COMMAND + CLASSIFIER_DEMOS_S + classifier_steps * SECONDS_PER_CLASSIFIER_STEP
    est["total"] = sum(est.values())
    return {k: round(v, 1) for k, v in est.items()}


def classifier_run(args: argparse.Namespace) -> rep.TrainRun:
    """Stage 0: the reward classifier on arm-less camera demonstrations generated into ``<out>/classifier_demos``."""
    smoke = ["debug=smoke"] if args.smoke else []
    return rep.TrainRun("reward_classifier", args.seed, args.out / "reward_classifier" / f"seed{args.seed}",
                        rep.merge_overrides(
        ["experiment=none", "policy=reward_classifier", "dataset=so101_pick_place_sim_camera"], smoke,
        [f"dataset.root={args.out / 'classifier_demos'}", "dataset.repo_id=robolearn/so101_pick_place_scene_camera",
         "+dataset.generator.show_robot=false", f"dataset.generator.camera={CLASSIFIER_CAMERA}",
         f"+dataset.generator.steps_after_success={CLASSIFIER_STEPS_AFTER_SUCCESS}",
         "policy.use_state=true", f"policy.pos_weight={CLASSIFIER_POS_WEIGHT}",
         f"policy.label_offset={CLASSIFIER_LABEL_OFFSET}", "logger=csv", f"seed={args.seed}",
         f"trainer.max_steps={args.classifier_steps}",
         f"trainer.val_check_interval={max(1, min(500, args.classifier_steps))}"],
        [] if args.smoke else [f"dataset.batch_size={CLASSIFIER_BATCH_SIZE}"]))


def classifier_reward_overrides(classifier: rep.TrainRun) -> list[str]:
    """The HIL run's env with the arm-less camera and the classifier's reward (SAC's features_map is unchanged: it
    reads no camera)."""
    export = classifier.run_dir / "checkpoints" / "pretrained_model"
    return [f"dataset.env_kwargs.robot.camera={CLASSIFIER_CAMERA}", "+dataset.env_kwargs.robot.show_robot=false",
            "dataset.env_kwargs.cameras=true",
            "dataset.env_kwargs.reward={_target_:robolearn.rl.robot_env.ClassifierReward,"
            f"classifier:{{_target_:robolearn.policies.load_policy,path:'{export}'}},"
            f"image_keys:{{{CLASSIFIER_CAMERA}:'{CLASSIFIER_IMAGE_KEY}'}},state_key:observation.state}}"]


def plan_runs(args: argparse.Namespace) -> tuple[list[rep.TrainRun], rep.EvalRun]:
    """The training runs in order (the reward classifier first with ``--reward classifier``; the HIL run, learner
    + actor, last) and the evaluation of the HIL run's export."""
    smoke = ["debug=smoke"] if args.smoke else []
    every = max(1, min(2000, args.updates))
    classifier = classifier_run(args) if args.reward == "classifier" else None
    run = rep.TrainRun("hil_serl", args.seed, args.out / "hil_serl" / f"seed{args.seed}", rep.merge_overrides(
        ["experiment=hil_serl_so101_sim"], smoke,
        ["role=both", "logger=csv", "dataset.port=0", f"seed={args.seed}", f"trainer.max_steps={args.updates}",
         f"trainer.val_check_interval={every}"],
        [] if args.intervention_penalty is None else [f"actor.intervention_penalty={args.intervention_penalty}"],
        [] if classifier is None else classifier_reward_overrides(classifier)))
    extra = ["env.max_episode_steps=30"] if args.smoke else []
    ev = rep.EvalRun("final policy alone", run, run.run_dir / "evals" / "final", rep.merge_overrides(
        STATE_ENV, [f"eval.n_episodes={args.episodes}", f"eval.batch_size={min(10, args.episodes)}"], extra))
    return ([] if classifier is None else [classifier]) + [run], ev


def _version(path: Path) -> int:
    m = re.fullmatch(r"version_(\d+)", path.parent.name)
    return int(m.group(1)) if m else -1


def read_episodes(run_dir: Path) -> list[dict[str, float]]:
    """The actor's episodes in the order the learner received them: one dict per ``metrics.csv`` row holding
    ``env/success`` (every ``csv/version_<n>/`` in ``n`` order: a resumed run writes the next version), with
    ``episode`` (0-based), ``success`` (0/1, from the actor's reward source), ``intervention_rate`` (fraction of
    steps), ``length`` (steps), ``episode_return``, ``update`` (the learner's step when it was logged) and, when the
    actor reported it, ``sim_success`` (0/1, the simulator's own verdict).

    Raises:
        FileNotFoundError: the run has no ``csv/version_*/metrics.csv``.
        ValueError: an episode row without ``env/intervention_rate`` (names the file and row).
    """
    files = sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=_version)
    if not files:
        raise FileNotFoundError(f"{run_dir / 'csv'} holds no version_*/metrics.csv: was the run trained with "
                                "logger=csv?")
    episodes: list[dict[str, float]] = []
    for path in files:
        with open(path, newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                if not row.get("env/success"):
                    continue
                if not row.get("env/intervention_rate"):
                    raise ValueError(f"{path}, row {i}: an episode without env/intervention_rate (a learner older "
                                     "than the one-row episode log?)")
                episodes.append({"episode": len(episodes), "success": float(row["env/success"]),
                                 "intervention_rate": float(row["env/intervention_rate"]),
                                 "length": float(row["env/episode_length"]),
                                 "episode_return": float(row["env/episode_return"]), "update": int(row["step"])})
                if row.get("env/sim_success"):
                    episodes[-1]["sim_success"] = float(row["env/sim_success"])
    return episodes


def windows(episodes: Sequence[dict[str, float]], size: int, success_key: str = "success") -> list[dict[str, Any]]:
    """Consecutive windows of ``size`` episodes (a last, shorter one is kept when at least half full), success read
    from each episode's ``success_key`` (``success``, or ``sim_success`` beside a reward classifier): first and
    last episode, ``episodes``, ``successes``, ``pc_success`` with ``ci95_low``/``ci95_high`` (Wilson, %),
    ``pc_autonomous_success`` (succeeded with intervention rate 0, %), ``intervention_rate`` (mean, fraction),
    ``env_steps_end`` (the actor's steps up to the window's end) and ``update_end`` (the learner's step then)."""
    out, steps = [], 0.0
    for start in range(0, len(episodes), size):
        chunk = episodes[start:start + size]
        steps += sum(e["length"] for e in chunk)
        if out and len(chunk) * 2 < size:
            break
        k = int(sum(e[success_key] > 0.5 for e in chunk))
        auto = int(sum(e[success_key] > 0.5 and e["intervention_rate"] == 0.0 for e in chunk))
        low, high = wilson_interval(k, len(chunk))
        out.append({"first_episode": chunk[0]["episode"], "last_episode": chunk[-1]["episode"],
                    "episodes": len(chunk), "successes": k, "pc_success": 100.0 * k / len(chunk),
                    "ci95_low": 100.0 * low, "ci95_high": 100.0 * high,
                    "pc_autonomous_success": 100.0 * auto / len(chunk),
                    "intervention_rate": sum(e["intervention_rate"] for e in chunk) / len(chunk),
                    "env_steps_end": int(steps), "update_end": int(chunk[-1]["update"])})
    return out


def reward_agreement(episodes: Sequence[dict[str, float]]) -> dict[str, int] | None:
    """The actor's episodes counted by (reward source's success, simulator's success): ``both``, ``reward_only``
    (a false success: the episode ended without the task done), ``sim_only`` (a missed success), ``neither``; None
    when no episode carries ``sim_success``."""
    pairs = [(e["success"] > 0.5, e["sim_success"] > 0.5) for e in episodes if "sim_success" in e]
    if not pairs:
        return None
    return {"both": sum(r and t for r, t in pairs), "reward_only": sum(r and not t for r, t in pairs),
            "sim_only": sum(t and not r for r, t in pairs), "neither": sum(not r and not t for r, t in pairs)}


def check_plan(args: argparse.Namespace) -> None:
    """Write ``<out>/plan.json`` (the parameters), or check that an existing one holds the same.

    Raises:
        RuntimeError: ``--out`` holds a run with other parameters (names them)."""
    keys = ("updates", "episodes", "seed", "smoke", "intervention_penalty", "reward", "classifier_steps")
    rep.check_plan_file(args.out, {k: getattr(args, k) for k in keys},
                        what="a HIL-SERL run")


def spec_of(args: argparse.Namespace, ev: rep.EvalRun) -> dict[str, Any]:
    """The reproduce.py-shaped spec of the final evaluation, for :func:`reproduce.summarize`."""
    return {"name": NAME, "arms": [{"name": ev.arm, "train": "hil_serl", "eval": []}],
            "plot": {"x": "arm", "xlabel": "arm", "log_x": False, "extra": ["avg_episode_length"]}}


def write_curve_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The windows as CSV, one row each."""
    keys = ["first_episode", "last_episode", "episodes", "successes", "pc_success", "ci95_low", "ci95_high",
            "pc_autonomous_success", "intervention_rate", "env_steps_end", "update_end"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for r in rows:
            w.writerow([round(r[k], 4) if isinstance(r[k], float) else r[k] for k in keys])


def actor_penalty(run_dir: Path) -> float:
    """The RLIF intervention reward the run's actor used (``actor.intervention_penalty`` of the config it saved in
    ``<run_dir>/actor/.hydra/config.yaml``; 0 when absent).

    Raises:
        FileNotFoundError: the run has no actor config (not a ``role=both`` run)."""
    from omegaconf import OmegaConf

    path = run_dir / "actor" / ".hydra" / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: was {run_dir} trained with role=both?")
    return float((OmegaConf.load(path).get("actor") or {}).get("intervention_penalty", 0.0) or 0.0)


def _penalty_text(penalty: float) -> str:
    if penalty == 0:
        return "no RLIF intervention reward (HIL-SERL's sparse reward alone)"
    return f"RLIF intervention reward -{penalty:g} per takeover"


def _reward_text(actor: dict[str, Any]) -> str:
    agree = actor.get("reward_agreement")
    if actor.get("reward", "sim") != "classifier" or not agree:
        return "reward and success from the simulator"
    n = sum(agree.values())
    return (f"reward and episode ends from the reward classifier (arm-less `{CLASSIFIER_CAMERA}` camera + joints), "
            f"which agreed with the simulator's success in {agree['both'] + agree['neither']} of {n} actor episodes "
            f"(false successes {agree['reward_only']}, missed successes {agree['sim_only']}, both {agree['both']})")


def write_table(args: argparse.Namespace, record: dict[str, Any], path: Path) -> None:
    """Markdown: the curve's windows, the final policy without the expert, provenance."""
    source, final = record["source"], record["rows"][0]
    prov = f"UNVERIFIED ({final['unverified']} run)" if final["unverified"] else "checked"
    lines = [f"# {'SMOKE RUN (tiny settings: checks the path, not a result): ' if args.smoke else ''}"
             "HIL-SERL on the simulated SO-101 pick-place (learner + actor, scripted expert as the human)", "",
             f"Collected at commit {source['commit'][:7]}{'' if source['clean'] else ' (dirty tree)'} by "
             f"`{record['command']}`; training seed {args.seed}; {args.updates} learner updates; "
             f"{record['actor']['episodes']} actor episodes ({record['actor']['env_steps']} env steps, "
             f"{record['actor']['intervention_steps']} of them driven by the expert); "
             f"{_penalty_text(record['actor']['intervention_penalty'])}; {_reward_text(record['actor'])}; "
             "Wilson 95 % intervals.", "",
             f"Actor episodes in windows of {args.window}: success (the simulator's) counts an episode the expert "
             "finished; autonomous success counts only episodes with no intervention.", "",
             "| episodes | learner update at end | success % (95 % CI) | autonomous success % | intervention rate |",
             "|---|---|---|---|---|"]
    for w in record["curve"]:
        lines.append(f"| {w['first_episode']}–{w['last_episode']} | {w['update_end']} | {w['pc_success']:.0f} "
                     f"({w['ci95_low']:.0f}–{w['ci95_high']:.0f}) | {w['pc_autonomous_success']:.0f} | "
                     f"{w['intervention_rate']:.2f} |")
    lines += ["", f"Final policy alone (no expert, no takeover; `eval.py env=robot_so101_sim`, state only, "
                  f"{final['episodes']} episodes reset with 1000 + i): **{final['pc_success']:.0f} % "
                  f"({final['ci95_low']:.0f}–{final['ci95_high']:.0f})** [{final['successes']}/{final['episodes']}]; "
                  f"provenance {prov}.", "",
              f"Compute: {record['compute_s'] / 60:.1f} min of train/eval commands "
              f"({record['hardware'].get('cpus')} CPU cores, learner and actor sharing them).", ""]
    path.write_text("\n".join(lines))


def plot(args: argparse.Namespace, record: dict[str, Any], path: Path) -> None:
    """Success (Wilson band), autonomous success and intervention rate (%) per window against actor episodes; the
    final policy's evaluation as a point at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve, final = record["curve"], record["rows"][0]
    xs = [w["last_episode"] + 1 for w in curve]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, [w["pc_success"] for w in curve], "o-", color="C0", label="success (expert may finish)")
    ax.fill_between(xs, [w["ci95_low"] for w in curve], [w["ci95_high"] for w in curve], color="C0", alpha=0.2)
    ax.plot(xs, [w["pc_autonomous_success"] for w in curve], "s-", color="C2", label="autonomous success")
    ax.plot(xs, [100 * w["intervention_rate"] for w in curve], "^--", color="C3", label="intervention rate")
    if xs:
        ax.errorbar([xs[-1]], [final["pc_success"]], yerr=[[final["pc_success"] - final["ci95_low"]],
                    [final["ci95_high"] - final["pc_success"]]], fmt="*", ms=12, capsize=4, color="k",
                    label=f"final policy alone ({final['episodes']} eval episodes)")
    ax.set_xlabel(f"actor episodes (windows of {args.window})")
    ax.set_ylabel("%")
    ax.set_ylim(-2, 102)
    rlif = record["actor"]["intervention_penalty"]
    ax.set_title(f"HIL-SERL{f' + RLIF reward -{rlif:g}' if rlif else ''}, SO-101 pick-place sim, {args.updates} "
                 f"updates{' [SMOKE]' if args.smoke else ''}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the training and the evaluation and write the results; returns the results record (an empty
    dict with ``--classifier-only``, which stops after stage 0).

    Raises:
        SourceStateError: dirty tree, or a run failing the provenance checks, without ``--allow-dirty``.
        RuntimeError: a command failed (names its log), the run was started at another commit, or ``--out`` holds
            a run with other parameters.
        ValueError: the actor sent no episode (nothing to plot).
    """
    args = parse_args(argv)
    header = results_header(REPO, argv=sys.argv if argv is None else [__file__, *argv], allow_dirty=args.allow_dirty)
    head = (git_state(REPO) or {}).get("commit") if not args.allow_dirty else None
    check_plan(args)
    est = estimate_seconds(args.updates, args.episodes, args.classifier_steps)
    print(f"[{NAME}] run in {args.out}; results in {args.results}. Estimated cost on the 2-core CPU: "
          f"{est['total'] / 60:.0f} min (" + ", ".join(f"{k} {v / 60:.1f}" for k, v in est.items() if k != "total")
          + " min)", flush=True)
    threads = str(max(1, (os.cpu_count() or 1) // 2))  # learner and actor share the CPU
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    runs, ev = plan_runs(args)
    run = runs[-1]
    for r in runs:  # the classifier (if any) before the HIL run that reads its export
        print(rep.do_train(r, args.accelerator, env, head), flush=True)
        if args.classifier_only:
            print(f"[{NAME}] --classifier-only: stopped after the reward classifier", flush=True)
            return {}
    print(rep.do_eval(ev, args.accelerator, env), flush=True)
    episodes = read_episodes(run.run_dir)
    if not episodes:
        raise ValueError(f"the actor of {run.run_dir} reported no finished episode: nothing to plot")
    success_key = "sim_success" if args.reward == "classifier" else "success"
    missing = [e["episode"] for e in episodes if success_key not in e]
    if missing:
        raise ValueError(f"{run.run_dir}: actor episodes {missing[:5]} carry no env/{success_key}")
    rows, records = rep.summarize(spec_of(args, ev), runs, [ev], args.allow_dirty)
    compute = sum((records[f"{r.variant}/seed{r.seed}"]["train"].get("seconds") or 0)
                  + sum(e.get("seconds") or 0 for e in records[f"{r.variant}/seed{r.seed}"]["evals"].values())
                  for r in runs)
    record = {**finish_header(header), "experiment": NAME, "smoke": args.smoke,
              "parameters": json.loads((args.out / "plan.json").read_text()) | {"window": args.window},
              "estimate_s": est, "state_env_overrides": list(STATE_ENV),
              "actor": {"episodes": len(episodes), "env_steps": int(sum(e["length"] for e in episodes)),
                        "intervention_steps": int(round(sum(e["length"] * e["intervention_rate"] for e in episodes))),
                        "successes": int(sum(e[success_key] > 0.5 for e in episodes)),
                        "intervention_penalty": actor_penalty(run.run_dir), "reward": args.reward,
                        "reward_agreement": reward_agreement(episodes)},
              "curve": windows(episodes, args.window, success_key), "rows": rows, "episodes": episodes, "runs": records,
              "compute_s": round(compute, 1)}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    write_curve_csv(record["curve"], args.results / "curve.csv")
    rep.write_csv(spec_of(args, ev), rows, args.results / "table.csv")
    write_table(args, record, args.results / "table.md")
    plot(args, record, args.results / "plot.png")
    print((args.results / "table.md").read_text())
    print(f"results: {args.results}")
    return record


if __name__ == "__main__":
    main()
