"""Diffusion Policy PushT zarr replay buffer -> LeRobotDataset v3.0, and the PushT coverage/reward."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from robolearn.tools.convert.__main__ import main
from robolearn.tools.convert.zarr_replay import (
    PUSHT_GOAL_POSE,
    PUSHT_TASK,
    T_AREA,
    T_BODY_RECTS,
    pusht_coverage,
    pusht_reward_success,
)
from robolearn.datasets.lerobot_dataset import LeRobotDataset

ZARR = "pusht_cchi_v7_replay/pusht_cchi_v7_replay.zarr"


def _inside_t(points, x, y, angle):
    """Independent point-in-T test: rotate points into the body frame and compare with the rectangles' bounds."""
    c, s = math.cos(angle), math.sin(angle)
    d = points - np.array([x, y])
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)
    inside = np.zeros(len(points), bool)
    for r in T_BODY_RECTS:
        lo, hi = r.min(0), r.max(0)
        inside |= np.all((local >= lo) & (local <= hi), axis=1)
    return inside


def test_coverage_geometry():
    assert T_AREA == sum(np.ptp(r[:, 0]) * np.ptp(r[:, 1]) for r in T_BODY_RECTS)
    assert pusht_coverage(*PUSHT_GOAL_POSE) == pytest.approx(1.0)
    assert pusht_coverage(0.0, 0.0, 0.0) == 0.0
    # Turning the T by a full turn changes nothing; a quarter turn about its origin loses most of the overlap.
    assert pusht_coverage(256, 256, math.pi / 4 + 2 * math.pi) == pytest.approx(1.0)
    # Monte Carlo cross-check against an independent point-in-polygon test.
    rng = np.random.default_rng(0)
    gx, gy, ga = PUSHT_GOAL_POSE
    pts = rng.uniform([gx - 130, gy - 130], [gx + 130, gy + 130], size=(400_000, 2))
    in_goal = _inside_t(pts, gx, gy, ga)
    for pose in [(266.0, 250.0, math.pi / 4 + 0.2), (240.0, 270.0, 0.5), (256.0, 256.0, math.pi / 4 + math.pi / 2)]:
        mc = (in_goal & _inside_t(pts, *pose)).sum() / in_goal.sum()
        assert pusht_coverage(*pose) == pytest.approx(mc, abs=0.01), pose
    reward, success = pusht_reward_success(np.array([[0, 0, 256, 256, math.pi / 4], [0, 0, 256 + 15, 256, math.pi / 4]]))
    assert reward.dtype == np.float32 and reward[0] == 1.0 and success.tolist() == [True, False]
    assert reward[1] == pytest.approx(pusht_coverage(271, 256, math.pi / 4) / 0.95)


# Coverage of replay-buffer block poses as computed by gym-pusht 0.1.8 itself (pymunk body placed at the pose,
# shapely intersection with the goal body's T), recorded once with that package (not a robolearn dependency).
GYM_PUSHT_COVERAGE = [
    ((350.181640625, 358.1051940917969, 5.802225589752197), 0.0),
    ((260.3603515625, 236.0753173828125, 0.6616489291191101), 0.6187302149934337),
    ((196.76600646972656, 321.5650634765625, 0.7880839705467224), 0.15001013884100317),
    ((251.44248962402344, 262.810791015625, 0.8216593861579895), 0.8295938590016256),
    ((252.7175750732422, 250.4699249267578, 0.7675283551216125), 0.8733220973703787),
]


@pytest.mark.parametrize("pose, expected", GYM_PUSHT_COVERAGE)
def test_coverage_matches_gym_pusht(pose, expected):
    assert pusht_coverage(*pose) == pytest.approx(expected, abs=1e-9)


def test_replay_state_convention_matches_t_geometry(shared_datasets):
    """The keypoints are a rigid function of (block x, block y, angle) and lie on the T of T_BODY_RECTS, and the
    demonstrations end with the block centred on the goal pose: the pose convention the coverage uses is right."""
    zarr = pytest.importorskip("zarr")
    z = zarr.open(str(shared_datasets / ZARR), mode="r")
    st, kp = z["data/state"][:400], z["data/keypoint"][:400]
    local = []
    for s, k in zip(st, kp):
        c, sn = math.cos(s[4]), math.sin(s[4])
        d = k - s[2:4]
        local.append(np.stack([c * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + c * d[:, 1]], -1))
    local = np.stack(local)
    assert np.abs(local - local[0]).max() < 0.05  # same body-frame keypoints in every frame
    assert local[0][:, 0].min() == pytest.approx(-60, abs=2) and local[0][:, 0].max() == pytest.approx(60, abs=2)
    assert local[0][:, 1].min() == pytest.approx(0, abs=2) and local[0][:, 1].max() == pytest.approx(120, abs=3)
    ends = z["meta/episode_ends"][:]
    last = z["data/state"].get_orthogonal_selection((ends[:20] - 1, slice(None)))
    assert np.median(np.abs(last[:, 2:4] - 256)) < 8
    assert np.median([pusht_coverage(*s[2:]) for s in last]) > 0.7


def test_convert_two_episodes(tmp_path, shared_datasets):
    zarr = pytest.importorskip("zarr")
    src = shared_datasets / ZARR
    root = tmp_path / "pusht"
    assert main(["zarr", str(src), "--repo-id", "local/pusht", "--fps", "10", "--root", str(root),
                 "--max-episodes", "2", "--no-progress"]) == 0
    z = zarr.open(str(src), mode="r")
    ends = z["meta/episode_ends"][:2]
    n = int(ends[-1])
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] == n and info["fps"] == 10
    assert info["features"]["observation.image"]["shape"] == [96, 96, 3]
    assert info["features"]["observation.environment_state"]["shape"] == [18]

    table = pq.read_table(root / "data/chunk-000/file-000.parquet")
    state = z["data/state"][:n]
    np.testing.assert_array_equal(np.stack(table["observation.state"].to_numpy(zero_copy_only=False)), state[:, :2])
    np.testing.assert_array_equal(np.stack(table["action"].to_numpy(zero_copy_only=False)), z["data/action"][:n])
    np.testing.assert_array_equal(np.stack(table["observation.environment_state"].to_numpy(zero_copy_only=False)),
                                  z["data/keypoint"][:n].reshape(n, 18))
    reward, success = pusht_reward_success(state)
    np.testing.assert_array_equal(table["next.reward"].to_numpy(), reward)
    np.testing.assert_array_equal(table["next.success"].to_numpy(), success)
    assert table["episode_index"].to_numpy().tolist() == [0] * int(ends[0]) + [1] * int(ends[1] - ends[0])

    ds = LeRobotDataset("local/pusht", root=root)
    assert len(ds) == n and ds[0]["task"] == PUSHT_TASK
    img = z["data/img"]
    for i in (0, int(ends[0]) - 1, int(ends[0]), n - 1):
        got = ds[i]["observation.image"].numpy() * 255.0
        ref = img[i].transpose(2, 0, 1)
        assert np.abs(got - ref).mean() < 6, i  # AV1 crf 30 (lerobot's default)
    np.testing.assert_array_equal(ds[int(ends[0])]["observation.state"].numpy(), state[int(ends[0]), :2])
