"""Gymnasium wrappers for real-robot RL, as HIL-SERL (Luo et al. 2024) and lerobot's ``gym_manipulator`` use them.

- :class:`ImageCropResize`: crop each camera to a region of interest and resize it (HIL-SERL crops to the
  workspace and trains at 128x128);
- time limit: use ``gymnasium.wrappers.TimeLimit`` (``{_target_: gymnasium.wrappers.TimeLimit, _partial_: true,
  max_episode_steps: N}`` in ``actor.wrappers``);
- :class:`GripperPenalty`: a small negative reward each time the gripper command switches open <-> closed
  (discourages chattering grasps);
- :class:`EndEffectorActionSpace`: the policy acts in [-1, 1]^3 (+ gripper); actions are scaled to per-axis steps
  (m per env step) and clipped so the commanded end-effector position stays inside a workspace box;
- :class:`ResetToJointPose`: every reset first drives the robot to a fixed joint pose;
- :class:`RewardClassifierWrapper`: a success classifier on camera frames gives the reward (1 on success, which
  also terminates the episode), instead of a hand-written reward.

Cameras are observation dict entries ``(H, W, C)`` uint8 (gymnasium / robot layout) at the keys given.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch


def _get(obs: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        obs = obs[part]
    return obs


def _set(obs: dict, dotted: str, value: Any) -> dict:
    parts = dotted.split(".")
    node = obs
    for part in parts[:-1]:
        node[part] = dict(node[part])
        node = node[part]
    node[parts[-1]] = value
    return obs


class ImageCropResize(gym.ObservationWrapper):
    """Crop then resize camera observations.

    Args:
        env: env with a ``Dict`` observation space holding ``(H, W, C)`` uint8 cameras.
        crop: ``{dotted camera key: [top, left, height, width]}`` in pixels (cameras not listed are not cropped).
        size: ``[height, width]`` every listed/cropped camera is resized to (bilinear, antialiased); None keeps size.
        keys: cameras to resize (default: the keys of ``crop``).

    Raises:
        KeyError: a key is not in the observation space. ValueError: a crop box outside the image.
    """

    def __init__(self, env: gym.Env, crop: Mapping[str, Sequence[int]] | None = None,
                 size: Sequence[int] | None = None, keys: Sequence[str] | None = None) -> None:
        super().__init__(env)
        self.crop = {k: tuple(int(x) for x in v) for k, v in (crop or {}).items()}
        self.size = tuple(int(s) for s in size) if size is not None else None
        self.keys = list(keys) if keys is not None else list(self.crop)
        space = env.observation_space
        new_space = space
        for key in self.keys:
            try:
                sub = _get_space(space, key)
            except KeyError:
                raise KeyError(f"ImageCropResize: camera '{key}' not in the observation space {space}") from None
            h, w, c = sub.shape
            if key in self.crop:
                top, left, ch, cw = self.crop[key]
                if top < 0 or left < 0 or top + ch > h or left + cw > w or ch < 1 or cw < 1:
                    raise ValueError(f"ImageCropResize: crop {list(self.crop[key])} of '{key}' is outside its "
                                     f"{h}x{w} image")
                h, w = ch, cw
            if self.size is not None:
                h, w = self.size
            new_space = _replace_space(new_space, key, gym.spaces.Box(0, 255, (h, w, c), np.uint8))
        self.observation_space = new_space

    def transform(self, img: np.ndarray, key: str) -> np.ndarray:
        """One camera frame ``(H, W, C)`` uint8 -> cropped and resized ``(h, w, C)`` uint8."""
        if key in self.crop:
            top, left, ch, cw = self.crop[key]
            img = img[top:top + ch, left:left + cw]
        if self.size is not None and tuple(img.shape[:2]) != self.size:
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
            x = torch.nn.functional.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
            img = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        return img

    def observation(self, observation: dict) -> dict:
        out = dict(observation)
        for key in self.keys:
            out = _set(out, key, self.transform(np.asarray(_get(out, key)), key))
        return out


def _get_space(space: gym.spaces.Dict, dotted: str) -> gym.Space:
    for part in dotted.split("."):
        space = space.spaces[part]
    return space


def _replace_space(space: gym.spaces.Dict, dotted: str, new: gym.Space) -> gym.spaces.Dict:
    head, _, rest = dotted.partition(".")
    spaces = dict(space.spaces)
    spaces[head] = _replace_space(spaces[head], rest, new) if rest else new
    return gym.spaces.Dict(spaces)


class GripperPenalty(gym.Wrapper):
    """Add ``penalty`` to the reward when the gripper command switches state (HIL-SERL's gripper penalty).

    Args:
        penalty: reward added at a switch (negative, e.g. -0.02).
        gripper_index: index of the gripper command in the action vector.
        threshold: commands above it mean "closed" (e.g. 0.5 for [0, 1], 1.0 for gym-hil's [0, 2]).

    The penalty of the step is also reported as ``info["gripper_penalty"]``.
    """

    def __init__(self, env: gym.Env, penalty: float = -0.02, gripper_index: int = -1, threshold: float = 0.5) -> None:
        super().__init__(env)
        self.penalty, self.gripper_index, self.threshold = float(penalty), int(gripper_index), float(threshold)
        self._closed: bool | None = None

    def reset(self, **kwargs: Any):
        self._closed = None
        return self.env.reset(**kwargs)

    def step(self, action):
        closed = bool(np.asarray(action).reshape(-1)[self.gripper_index] > self.threshold)
        obs, reward, terminated, truncated, info = self.env.step(action)
        pen = self.penalty if self._closed is not None and closed != self._closed else 0.0
        self._closed = closed
        return obs, float(reward) + pen, terminated, truncated, {**info, "gripper_penalty": pen}


class EndEffectorActionSpace(gym.ActionWrapper):
    """Policy actions in [-1, 1] -> end-effector position deltas (m) clipped to a workspace box.

    Args:
        env: an env whose action is ``[dx, dy, dz, (gripper...)]`` in metres per step.
        step_sizes: metres per step at action 1, per axis (3 values).
        bounds_min, bounds_max: workspace box (m) the commanded position ``p + delta`` must stay in; None = no box.
        ee_position: ``ee_position(env) -> (3,)`` current end-effector position (m); required with bounds.

    Raises:
        ValueError: wrong lengths, ``bounds_min > bounds_max``, or bounds without ``ee_position``.
    """

    def __init__(self, env: gym.Env, step_sizes: Sequence[float], bounds_min: Sequence[float] | None = None,
                 bounds_max: Sequence[float] | None = None,
                 ee_position: Callable[[gym.Env], np.ndarray] | None = None) -> None:
        super().__init__(env)
        self.step_sizes = np.asarray(step_sizes, dtype=np.float64)
        if self.step_sizes.shape != (3,):
            raise ValueError(f"step_sizes needs 3 values (x, y, z), got {list(step_sizes)}")
        self.low = None if bounds_min is None else np.asarray(bounds_min, dtype=np.float64)
        self.high = None if bounds_max is None else np.asarray(bounds_max, dtype=np.float64)
        if (self.low is None) != (self.high is None):
            raise ValueError("give both bounds_min and bounds_max, or neither")
        if self.low is not None:
            if self.low.shape != (3,) or self.high.shape != (3,) or (self.low > self.high).any():
                raise ValueError(f"bounds must be 3 values each with min <= max, got {self.low} / {self.high}")
            if ee_position is None:
                raise ValueError("workspace bounds need ee_position(env) -> current end-effector position")
        self.ee_position = ee_position
        inner = env.action_space
        extra = inner.shape[0] - 3
        low = np.concatenate([-np.ones(3), inner.low[3:]]).astype(np.float32)
        high = np.concatenate([np.ones(3), inner.high[3:]]).astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, shape=(3 + extra,), dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(-1).copy()
        delta = np.clip(a[:3], -1.0, 1.0) * self.step_sizes
        if self.low is not None:
            pos = np.asarray(self.ee_position(self.env), dtype=np.float64)
            delta = np.clip(pos + delta, self.low, self.high) - pos
        a[:3] = delta
        return a.astype(np.float32)


class ResetToJointPose(gym.Wrapper):
    """After every ``reset``, drive the robot to ``joint_pose`` with ``move(env, joint_pose)`` (e.g. a few position
    commands on a real arm, or setting the simulator state), then return the observation ``move`` gives back.

    Args:
        joint_pose: target joint positions (robot units).
        move: ``move(env, joint_pose) -> observation`` performing the motion.
    """

    def __init__(self, env: gym.Env, joint_pose: Sequence[float],
                 move: Callable[[gym.Env, np.ndarray], Any]) -> None:
        super().__init__(env)
        self.joint_pose = np.asarray(joint_pose, dtype=np.float64)
        self.move = move

    def reset(self, **kwargs: Any):
        _, info = self.env.reset(**kwargs)
        return self.move(self.env, self.joint_pose.copy()), info


class RewardClassifierWrapper(gym.Wrapper):
    """Reward from a success classifier on camera frames: ``p = classifier(frames)``; ``p >= threshold`` gives
    reward ``success_reward`` and terminates the episode (``info["is_success"] = True``); otherwise the reward is
    ``failure_reward`` (the env's own reward is kept as ``info["env_reward"]``).

    Args:
        classifier: either a callable ``frames -> success probability`` (a float or a ``(1,)`` tensor), or an object
            with ``predict_success(obs) -> (B,)`` probabilities (e.g. the ``policy=reward_classifier`` policy), which
            receives ``{key: (1, C, H, W) float32 in [0, 1]}``.
        image_keys: ``{dotted native camera key: classifier input key}`` (e.g. ``{"pixels.front":
            "observation.images.front"}``); frames are sent as ``{input key: (1, C, H, W)}`` in [0, 1].
        threshold: success probability threshold.
        success_reward, failure_reward: rewards on success / otherwise.
        terminate_on_success: end the episode at a success.

    Raises:
        TypeError: ``classifier`` is neither callable nor has ``predict_success``.
    """

    def __init__(self, env: gym.Env, classifier: Any, image_keys: Mapping[str, str], threshold: float = 0.5,
                 success_reward: float = 1.0, failure_reward: float = 0.0, terminate_on_success: bool = True) -> None:
        super().__init__(env)
        predict = getattr(classifier, "predict_success", None)
        if predict is None and not callable(classifier):
            raise TypeError(f"classifier must be callable or have predict_success(), got {type(classifier).__name__}")
        self.predict = predict or classifier
        self.image_keys = dict(image_keys)
        self.threshold = float(threshold)
        self.success_reward, self.failure_reward = float(success_reward), float(failure_reward)
        self.terminate_on_success = bool(terminate_on_success)

    def success_probability(self, obs: Mapping[str, Any]) -> float:
        """The classifier's success probability for one native observation."""
        frames = {}
        for native, key in self.image_keys.items():
            img = torch.as_tensor(np.asarray(_get(obs, native)))
            frames[key] = img.permute(2, 0, 1)[None].float().div(255.0)
        with torch.no_grad():
            p = self.predict(frames)
        return float(torch.as_tensor(p).reshape(-1)[0])

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        p = self.success_probability(obs)
        success = p >= self.threshold
        info = {**info, "env_reward": reward, "success_probability": p, "is_success": success}
        new_reward = self.success_reward if success else self.failure_reward
        return obs, new_reward, terminated or (success and self.terminate_on_success), truncated, info
