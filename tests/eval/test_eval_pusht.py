"""evaluate_policy on gym-pusht with a constant policy and a tiny ACT built from a real dataset's features/stats."""

import json

import av
import numpy as np
import pytest

from robolearn.eval import evaluate_policy
from robolearn.features import FeatureType, PolicyFeature
from tests.eval.helpers import PUSHT_DS, ConstantPolicy, pusht_spec, tiny_pusht_act


def test_constant_policy_outputs_and_determinism(tmp_path):
    spec = pusht_spec(max_episode_steps=5)
    policy = ConstantPolicy([256.0, 256.0])
    info = evaluate_policy(policy, spec, n_episodes=3, batch_size=2, seed=7, max_episodes_rendered=2,
                           output_dir=tmp_path / "a", progress=False)
    # 2 batches (2 + 1 counted episodes); seeds are seed + episode index
    assert [e["seed"] for e in info["per_episode"]] == [7, 8, 9]
    assert [e["episode_index"] for e in info["per_episode"]] == [0, 1, 2]
    assert all(e["length"] == 5 for e in info["per_episode"])
    # the policy saw the image as float CHW and the agent position, plus the env's task
    assert policy.batches[0]["observation.image"] == (2, 3, 96, 96)
    assert policy.batches[0]["observation.state"] == (2, 2) and policy.batches[0]["task"] == ["push", "push"]
    for e in info["per_episode"]:
        assert 0.0 <= e["max_reward"] <= 1.0 and e["max_coverage"] >= 0.0
        assert e["success"] == (e["max_coverage"] >= 0.95)
    agg = info["aggregated"]
    assert agg["n_episodes"] == 3
    assert agg["avg_sum_reward"] == pytest.approx(np.mean([e["sum_reward"] for e in info["per_episode"]]))
    assert set(info["per_task"]) == {"push"}
    # one timed select_action call per step of each batch (5 steps, 2 batches)
    assert agg["select_action_calls"] == 10
    assert 0 <= agg["select_action_ms_p50"] <= agg["select_action_ms_p90"] <= agg["select_action_ms_max"]

    on_disk = json.loads((tmp_path / "a" / "eval_info.json").read_text())
    assert on_disk["aggregated"] == agg
    assert (tmp_path / "a" / "eval_plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    videos = sorted((tmp_path / "a" / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["eval_episode_0.mp4", "eval_episode_1.mp4"]
    with av.open(str(videos[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (96, 96, 3)  # reset frame + 5 steps, 96x96 visualization

    # same seed -> identical per-episode results, whatever the batch size
    again = evaluate_policy(ConstantPolicy([256.0, 256.0]), spec, n_episodes=3, batch_size=3, seed=7,
                            progress=False)
    assert again["per_episode"] == info["per_episode"]
    other = evaluate_policy(ConstantPolicy([256.0, 256.0]), spec, n_episodes=3, batch_size=3, seed=8, progress=False)
    assert other["per_episode"][0] == {**info["per_episode"][1], "episode_index": 0}


def test_async_envs_match_sync():
    spec = pusht_spec(max_episode_steps=4)
    sync = evaluate_policy(ConstantPolicy([100.0, 300.0]), spec, n_episodes=2, batch_size=2, seed=3, progress=False)
    asyn = evaluate_policy(ConstantPolicy([100.0, 300.0]), spec, n_episodes=2, batch_size=2, seed=3,
                           use_async_envs=True, progress=False)
    assert asyn["per_episode"] == sync["per_episode"]


def test_tiny_act_on_pusht_is_reproducible(shared_datasets, tmp_path):
    policy = tiny_pusht_act(shared_datasets / PUSHT_DS)
    spec = pusht_spec(max_episode_steps=6)
    a = evaluate_policy(policy, spec, n_episodes=2, batch_size=2, seed=1000, output_dir=tmp_path, progress=False)
    b = evaluate_policy(policy, spec, n_episodes=2, batch_size=2, seed=1000, progress=False)
    assert a["per_episode"] == b["per_episode"]
    assert [e["length"] for e in a["per_episode"]] == [6, 6]
    assert (tmp_path / "eval_info.json").is_file() and (tmp_path / "eval_plot.png").is_file()


def test_feature_mismatch_raises_before_rollout():
    class WrongCamera(ConstantPolicy):
        def select_action(self, batch):  # pragma: no cover - must never be reached
            raise AssertionError("rollout started despite mismatched features")

    policy = WrongCamera([0.0, 0.0], input_features={
        "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 480, 640)),
        "observation.state": PolicyFeature(FeatureType.STATE, (2,))})
    with pytest.raises(ValueError, match=r"(?s)'observation.images.top' is missing.*policy input features: "
                                         r"observation.images.top: \[3, 480, 640\].*env features \(after "
                                         r"features_map\): observation.image: \[3, 96, 96\]"):
        evaluate_policy(policy, pusht_spec(), n_episodes=1, progress=False)
    assert policy.resets == 1  # reset in the cleanup, never by a rollout
