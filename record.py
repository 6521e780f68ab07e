"""Record demonstrations into a LeRobotDataset v3.0, replay an episode, or set up hardware.

    python record.py robot=sim_so101_pick_place teleop=scripted dataset.repo_id=me/sim_pick \\
        dataset.single_task="Pick up the cube" dataset.num_episodes=5 dataset.fps=10 dataset.reset_time_s=0
    python record.py robot=so101_follower robot.port=/dev/ttyACM0 teleop=so101_leader teleop.port=/dev/ttyACM1 \\
        dataset.repo_id=me/pick dataset.single_task="Pick up the cube"
    python record.py mode=replay robot=sim_so101_pick_place dataset.repo_id=me/sim_pick dataset.episode=0
    python record.py mode=find_port | mode=find_cameras | mode=setup_motors robot=so101_follower robot.port=...
    python record.py mode=calibrate device=teleop teleop=so101_leader teleop.port=...

Keys while recording (in this terminal): → ends the episode, ← re-records it, Esc stops.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from robolearn.utils.resolvers import register_resolvers

log = logging.getLogger("robolearn.record")
register_resolvers()

MODES = ("record", "replay", "find_port", "setup_motors", "calibrate", "find_cameras")


def run(cfg: DictConfig):
    """Dispatch on ``cfg.mode``; returns the writer (record), the replayed actions (replay) or the setup result.

    Raises:
        ValueError: an unknown mode or device.
    """
    mode = cfg.mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "find_port":
        from robolearn.robots.setup import find_port

        return find_port()
    if mode == "find_cameras":
        from robolearn.robots.setup import find_cameras

        return find_cameras()
    if mode in ("setup_motors", "calibrate"):
        from robolearn.robots import setup

        if cfg.device not in ("robot", "teleop"):
            raise ValueError(f"device must be 'robot' or 'teleop', got {cfg.device!r}")
        device = instantiate(cfg.robot) if cfg.device == "robot" else instantiate(cfg.teleop)
        return setup.setup_motors(device) if mode == "setup_motors" else setup.calibrate(device)

    robot = instantiate(cfg.robot)
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    if mode == "replay":
        from robolearn.datasets.writer import default_root
        from robolearn.record.session import replay_episode

        root = Path(ds["root"]) if ds.get("root") else default_root(ds["repo_id"])
        return replay_episode(robot, root, ds["repo_id"], int(ds["episode"]), seed=cfg.seed)

    from robolearn.record.events import KeyboardEvents
    from robolearn.record.session import make_teleop, record_dataset

    teleop = make_teleop(cfg.teleop, robot)
    display = None
    if cfg.display_data:
        from robolearn.record.feedback import RerunDisplay

        display = RerunDisplay(save=cfg.display_save,
                               fallback_save=Path(cfg.paths.output_dir) / "record.rrd")
    events = KeyboardEvents(listen=bool(cfg.keyboard_events)).start()
    try:
        return record_dataset(robot, teleop, ds, resume=bool(cfg.resume), seed=int(cfg.seed), events=events,
                              play_sounds=bool(cfg.play_sounds), display=display)
    finally:
        events.stop()
        if display is not None:
            display.close()


@hydra.main(config_path="conf", config_name="record", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
