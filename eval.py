"""Evaluate a policy in simulation: ``python eval.py policy.path=<pretrained_model dir> env=pusht [key=value ...]``,
or deploy it on a robot: ``python eval.py policy.path=<dir> robot=so101_follower robot.port=... [dataset.repo_id=...]``.

Simulation: builds the policy from ``cfg.policy`` (an exported ``pretrained_model`` folder by default, or
``policy=scripted`` for the env's scripted expert), the env from ``cfg.env``, runs ``eval.n_episodes``
episodes and writes ``eval_info.json``, ``eval_plot.png`` and ``videos/`` into the Hydra run directory.
With ``eval_suite=<name>`` (``conf/eval_suite/``) it does so for every condition of the suite on the same seeds and
writes one table: ``suite_table.md``, ``suite_info.json``, ``suite_plot.png``, ``conditions/<name>/`` (docs/eval.md).

Robot (``robot=...`` set): runs the policy on the robot at ``dataset.fps`` for ``eval.n_episodes`` episodes of at
most ``dataset.episode_time_s`` s (:func:`robolearn.record.deploy.deploy`), records them when ``dataset.repo_id`` is
set, and writes ``deploy_info.json``. With ``teleop=...`` the teleoperator drives during ``dataset.reset_time_s``
between episodes and takes over on Tab (or ``takeover=windows|deviation`` in simulation); frames then record the
``intervention`` flag. ``rename_map`` maps robot observation keys to the policy's input keys (docs/recording.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from robolearn.eval import evaluate_policy, prepare_policy
from robolearn.utils.schema import register_schemas

log = logging.getLogger("robolearn.eval")
REPO_DIR = Path(__file__).resolve().parent
register_schemas()


def run_eval(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.policy`` on ``cfg.env`` with ``cfg.eval`` settings; returns the eval info dict.

    With ``eval_suite=<name>`` (``conf/eval_suite/``), evaluates every condition of the suite instead
    (:func:`run_suite`) and returns its ``suite_info.json`` dict.
    """
    if not cfg.get("env") or "_target_" not in cfg.env:
        raise ValueError("eval.py needs a simulated env: pass env=<name> (see conf/env/)")
    L.seed_everything(cfg.seed)
    policy = prepare_policy(instantiate(cfg.policy), cfg.get("device"))
    spec = instantiate(cfg.env)
    if cfg.get("eval_suite"):
        return run_suite(cfg, policy, spec)
    e = cfg.eval
    info = evaluate_policy(
        policy, spec, n_episodes=e.n_episodes, batch_size=e.batch_size, seed=cfg.seed,
        use_async_envs=e.use_async_envs, max_episodes_rendered=e.max_episodes_rendered,
        output_dir=cfg.paths.output_dir, progress=e.progress, video_codec=e.video_codec,
    )
    log.info("%s: %s", spec.name, json.dumps(info["aggregated"]))
    return info


def run_suite(cfg: DictConfig, policy, spec) -> dict:
    """Evaluate ``policy`` on every condition of ``cfg.eval_suite`` (:func:`robolearn.eval.suite.evaluate_suite`) with
    the ``cfg.eval`` settings; ``suite_info.json`` carries the provenance of the run (commit and clean flag of this
    checkout, command, hardware, versions, wall time) and its resolved config."""
    from omegaconf import OmegaConf

    from robolearn.eval.suite import evaluate_suite
    from robolearn.utils import provenance

    suite = instantiate(cfg.eval_suite, _convert_="all")
    try:
        header = provenance.results_header(REPO_DIR, allow_dirty=True)
    except provenance.SourceStateError:  # not run from a git checkout: no commit to name
        header = {"source": None}
    header["config"] = {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v
                        for k, v in cfg.items() if k != "hydra"}
    e = cfg.eval
    policy_name = OmegaConf.select(cfg, "policy.path") or OmegaConf.select(cfg, "policy._target_")
    info = evaluate_suite(
        policy, spec, suite, n_episodes=e.n_episodes, batch_size=e.batch_size, seed=cfg.seed,
        use_async_envs=e.use_async_envs, max_episodes_rendered=e.max_episodes_rendered,
        output_dir=cfg.paths.output_dir, progress=e.progress, video_codec=e.video_codec,
        policy_name=None if policy_name is None else str(policy_name), provenance=header,
    )
    for row in info["table"]:
        log.info("%s / %s: %.1f%% (95%% CI %.1f-%.1f)", suite.name, row["condition"], row["pc_success"],
                 *row["pc_success_ci95"])
    return info


def run_deploy(cfg: DictConfig) -> dict:
    """Run ``cfg.policy`` on ``cfg.robot`` (see the module docstring); returns the deploy info dict.

    With ``teleop=...`` the teleoperator drives during ``dataset.reset_time_s`` between episodes and can take over
    during episodes (Tab, or ``takeover=windows|deviation`` in simulation); ``rename_map`` renames robot observation
    keys to the policy's input keys (:func:`robolearn.record.deploy.deploy`).

    Raises:
        KeyError: the policy needs an input the robot does not provide, or ``rename_map`` names a key the robot
            does not have.
        ValueError: a bad ``rename_map``, times, ``takeover`` / ``dataset.record_autonomous=false`` without
            ``teleop``, or ``dataset.realtime=false`` on a robot that is not a
            :class:`~robolearn.robots.sim.SimRobot` (real arms run at ``dataset.fps`` in wall-clock time).
        FileExistsError: ``dataset.root`` already exists when recording.
    """
    from pathlib import Path

    from omegaconf import OmegaConf

    from robolearn.record.deploy import deploy, deploy_features
    from robolearn.record.events import KeyboardEvents
    from robolearn.record.session import make_teleop, open_writer
    from robolearn.robots.sim import SimRobot

    L.seed_everything(cfg.seed)
    policy = prepare_policy(instantiate(cfg.policy), cfg.get("device"))
    robot = instantiate(cfg.robot)
    realtime = bool(OmegaConf.select(cfg, "dataset.realtime", default=True))
    if not realtime and not isinstance(robot, SimRobot):
        raise ValueError(f"dataset.realtime=false steps as fast as possible, which only a simulated robot can do; "
                         f"{type(robot).__name__} is not a SimRobot: a real arm runs at dataset.fps in real time")
    teleop = make_teleop(cfg.teleop, robot) if cfg.get("teleop") else None
    takeover = instantiate(cfg.takeover, _convert_="all") if cfg.get("takeover") else None
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    rename_map = OmegaConf.to_container(cfg.rename_map, resolve=True) if cfg.get("rename_map") else None
    robot.connect()
    writer = None
    try:
        if teleop is not None:
            teleop.connect()
        if ds.get("repo_id"):
            features = deploy_features(robot, use_video=bool(ds.get("video", True)), with_teleop=teleop is not None)
            writer = open_writer(ds, features, getattr(robot, "name", None), resume=False)
        events = KeyboardEvents(listen=bool(cfg.keyboard_events)).start()
        try:
            episodes = deploy(policy, robot, fps=int(ds["fps"]), num_episodes=int(cfg.eval.n_episodes),
                              episode_time_s=float(ds["episode_time_s"]),
                              reset_time_s=float(ds.get("reset_time_s") or 0), teleop=teleop, takeover=takeover,
                              rename_map=rename_map, record_autonomous=bool(ds.get("record_autonomous", True)),
                              writer=writer, events=events, task=ds.get("single_task"), seed=int(cfg.seed),
                              play_sounds=bool(cfg.play_sounds), realtime=realtime)
        finally:
            events.stop()
    finally:
        if writer is not None:
            writer.finalize()
        if teleop is not None and teleop.is_connected:
            teleop.disconnect()
        robot.disconnect()
    known = [e["success"] for e in episodes if e["success"] is not None]
    info = {"robot": getattr(robot, "name", type(robot).__name__), "fps": int(ds["fps"]), "realtime": realtime,
            "episodes": episodes,
            "pc_success": 100.0 * sum(known) / len(known) if known else None,
            "dataset_root": str(writer.root) if writer is not None else None}
    if teleop is not None:
        info["teleop"] = getattr(teleop, "name", type(teleop).__name__)
        info["intervention_frames"] = sum(e["intervention_frames"] for e in episodes)
        info["episodes_with_takeover"] = sum(e["takeovers"] > 0 for e in episodes)
    out = Path(cfg.paths.output_dir) / "deploy_info.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2))
    log.info("deploy: %d episodes, success %s; %s", len(episodes), info["pc_success"], out)
    return info


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    if cfg.get("robot"):
        success = run_deploy(cfg)["pc_success"]
        return None if success is None else float(success)
    info = run_eval(cfg)
    if "table" in info:  # a suite: the nominal condition's success (the first condition's without one)
        rows = {r["condition"]: r for r in info["table"]}
        return float(rows.get("nominal", info["table"][0])["pc_success"])
    return float(info["aggregated"]["pc_success"])


if __name__ == "__main__":
    main()
