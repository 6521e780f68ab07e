"""Meta-World (Yu et al. 2019; Farama's ``metaworld`` 3.x, the ``-v3`` tasks) as lerobot's ``env=metaworld``.

One env instance is one of the 50 tasks (``task_name``, e.g. ``reach-v3``) of the Sawyer arm at a table, with the
observation keys, camera view, control rate and episode length of lerobot's Meta-World env (and its
``lerobot/metaworld_mt50`` dataset): ``pixels`` (the ``corner2`` camera, H x W x 3 uint8) -> ``observation.image``,
``agent_pos`` (4: end-effector x, y, z in metres, gripper opening in [0, 1]) -> ``observation.state``; action 4:
end-effector motion (x, y, z in [-1, 1], scaled by the env to at most 1 cm per step) and gripper effort in [-1, 1];
80 steps per second (5 MuJoCo steps of 2.5 ms); success = Meta-World's ``info["success"]``, which ends the episode.

Differences from lerobot's env, on purpose: object and goal positions are drawn from the task's range with a
generator seeded by ``reset(seed=...)`` (lerobot draws them from NumPy's global generator, so its episodes are not
reproducible by seed), and the default image is small (128 x 128; ``image_size=480`` is lerobot's).

Task suites: :data:`TASK_GROUPS` (``mt10``, ``mt50`` and lerobot's difficulty groups ``easy``, ``medium``, ``hard``,
``very_hard``), each task with its language instruction (:data:`TASK_DESCRIPTIONS`, the strings of lerobot's
Meta-World env and dataset, from the Meta-World paper's task list). :func:`suite_conditions` turns a group into the
conditions of an evaluation suite (``eval.py eval_suite=metaworld``). The scripted expert of every task
(``metaworld.policies``) is :class:`MetaWorldExpert` (``policy=scripted``).

``metaworld`` is imported only when an env is built; 3.1.1 pins ``mujoco==3.3.0`` and runs on this project's
MuJoCo 3.8 when installed with ``pip install --no-deps metaworld==3.1.1`` (docs/benchmark_envs.md).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from robolearn.envs.expert import ScriptedExpert
from robolearn.envs.factory import EnvSpec

# Task name -> language instruction (lerobot's Meta-World TASK_DESCRIPTIONS; push-v3 and push-back-v3 share one).
TASK_DESCRIPTIONS: dict[str, str] = {
    "assembly-v3": "Pick up a nut and place it onto a peg",
    "basketball-v3": "Dunk the basketball into the basket",
    "bin-picking-v3": "Grasp the puck from one bin and place it into another bin",
    "box-close-v3": "Grasp the cover and close the box with it",
    "button-press-topdown-v3": "Press a button from the top",
    "button-press-topdown-wall-v3": "Bypass a wall and press a button from the top",
    "button-press-v3": "Press a button",
    "button-press-wall-v3": "Bypass a wall and press a button",
    "coffee-button-v3": "Push a button on the coffee machine",
    "coffee-pull-v3": "Pull a mug from a coffee machine",
    "coffee-push-v3": "Push a mug under a coffee machine",
    "dial-turn-v3": "Rotate a dial 180 degrees",
    "disassemble-v3": "Pick a nut out of a peg",
    "door-close-v3": "Close a door with a revolving joint",
    "door-lock-v3": "Lock the door by rotating the lock clockwise",
    "door-open-v3": "Open a door with a revolving joint",
    "door-unlock-v3": "Unlock the door by rotating the lock counter-clockwise",
    "hand-insert-v3": "Insert the gripper into a hole",
    "drawer-close-v3": "Push and close a drawer",
    "drawer-open-v3": "Open a drawer",
    "faucet-open-v3": "Rotate the faucet counter-clockwise",
    "faucet-close-v3": "Rotate the faucet clockwise",
    "hammer-v3": "Hammer a screw on the wall",
    "handle-press-side-v3": "Press a handle down sideways",
    "handle-press-v3": "Press a handle down",
    "handle-pull-side-v3": "Pull a handle up sideways",
    "handle-pull-v3": "Pull a handle up",
    "lever-pull-v3": "Pull a lever down 90 degrees",
    "peg-insert-side-v3": "Insert a peg sideways",
    "pick-place-wall-v3": "Pick a puck, bypass a wall and place the puck",
    "pick-out-of-hole-v3": "Pick up a puck from a hole",
    "reach-v3": "Reach a goal position",
    "push-back-v3": "Push the puck to a goal",
    "push-v3": "Push the puck to a goal",
    "pick-place-v3": "Pick and place a puck to a goal",
    "plate-slide-v3": "Slide a plate into a cabinet",
    "plate-slide-side-v3": "Slide a plate into a cabinet sideways",
    "plate-slide-back-v3": "Get a plate from the cabinet",
    "plate-slide-back-side-v3": "Get a plate from the cabinet sideways",
    "peg-unplug-side-v3": "Unplug a peg sideways",
    "soccer-v3": "Kick a soccer into the goal",
    "stick-push-v3": "Grasp a stick and push a box using the stick",
    "stick-pull-v3": "Grasp a stick and pull a box with the stick",
    "push-wall-v3": "Bypass a wall and push a puck to a goal",
    "reach-wall-v3": "Bypass a wall and reach a goal",
    "shelf-place-v3": "Pick and place a puck onto a shelf",
    "sweep-into-v3": "Sweep a puck into a hole",
    "sweep-v3": "Sweep a puck off the table",
    "window-open-v3": "Push and open a window",
    "window-close-v3": "Push and close a window",
}

# Meta-World's MT10 (metaworld.MT10: the ten tasks of the paper's MT10 benchmark).
MT10_TASKS: tuple[str, ...] = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3",
)

# lerobot's difficulty groups (its ``--env.task=easy|medium|hard|very_hard``); together they are the 50 tasks.
DIFFICULTY_TO_TASKS: dict[str, tuple[str, ...]] = {
    "easy": (
        "button-press-v3", "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-wall-v3",
        "coffee-button-v3", "dial-turn-v3", "door-close-v3", "door-lock-v3", "door-open-v3", "door-unlock-v3",
        "drawer-close-v3", "drawer-open-v3", "faucet-close-v3", "faucet-open-v3", "handle-press-v3",
        "handle-press-side-v3", "handle-pull-v3", "handle-pull-side-v3", "lever-pull-v3", "plate-slide-v3",
        "plate-slide-back-v3", "plate-slide-back-side-v3", "plate-slide-side-v3", "reach-v3", "reach-wall-v3",
        "window-close-v3", "window-open-v3", "peg-unplug-side-v3",
    ),
    "medium": (
        "basketball-v3", "bin-picking-v3", "box-close-v3", "coffee-pull-v3", "coffee-push-v3", "hammer-v3",
        "peg-insert-side-v3", "push-wall-v3", "soccer-v3", "sweep-v3", "sweep-into-v3",
    ),
    "hard": ("assembly-v3", "hand-insert-v3", "pick-out-of-hole-v3", "pick-place-v3", "push-v3", "push-back-v3"),
    "very_hard": ("shelf-place-v3", "disassemble-v3", "stick-pull-v3", "stick-push-v3", "pick-place-wall-v3"),
}

# Named task lists accepted wherever tasks are given (:func:`task_names`): mt50 is every task, alphabetically.
TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "mt10": MT10_TASKS,
    "mt50": tuple(sorted(TASK_DESCRIPTIONS)),
    **DIFFICULTY_TO_TASKS,
}

DEFAULT_TASK = "push-v3"  # lerobot's default Meta-World task (push-v2 then)
DEFAULT_CAMERA = "corner2"
DEFAULT_IMAGE_SIZE = 128
NATIVE_FPS = 80  # frame_skip 5 x MuJoCo timestep 2.5 ms
MAX_PATH_LENGTH = 500  # Meta-World refuses to step an episode further
DEFAULT_MAX_EPISODE_STEPS = 400  # lerobot's episode_length
# lerobot moves the corner2 camera here (the view of Seo et al. 2022) and flips its image both ways (upright).
LEROBOT_CORNER2_POS = (0.75, 0.075, 0.7)
ACTION_DIM = 4
STATE_DIM = 4


def task_description(task_name: str) -> str:
    """The language instruction of a Meta-World task, e.g. ``"Reach a goal position"`` for ``reach-v3``.

    Raises:
        ValueError: ``task_name`` is not one of the 50 tasks (the message lists them).
    """
    try:
        return TASK_DESCRIPTIONS[task_name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown Meta-World task {task_name!r}; valid task_name values: "
                         f"{', '.join(sorted(TASK_DESCRIPTIONS))}") from None


def task_names(tasks: str | Sequence[str]) -> list[str]:
    """Resolve a task selection to task names, in order, without repeats.

    Args:
        tasks: a group of :data:`TASK_GROUPS` (``mt10``, ``mt50``, ``easy``, ``medium``, ``hard``, ``very_hard``),
            a task name, a comma-separated mix of both (``"reach-v3,hard"``), or a sequence of those.

    Raises:
        ValueError: an empty selection, or an entry that is neither a group nor a task (the message lists both).
    """
    entries = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    names: list[str] = []
    for entry in (str(e).strip() for e in entries):
        if not entry:
            continue
        if entry in TASK_GROUPS:
            group = TASK_GROUPS[entry]
        elif entry in TASK_DESCRIPTIONS:
            group = (entry,)
        else:
            raise ValueError(f"unknown Meta-World task or group {entry!r}; groups: {', '.join(TASK_GROUPS)}; "
                             f"tasks: {', '.join(sorted(TASK_DESCRIPTIONS))}")
        names.extend(t for t in group if t not in names)
    if not names:
        raise ValueError(f"no Meta-World task selected by {tasks!r}; give a group ({', '.join(TASK_GROUPS)}) "
                         "or task names")
    return names


def suite_conditions(tasks: str | Sequence[str] = "mt10") -> dict[str, dict[str, str]]:
    """Evaluation-suite conditions, one per task: ``{task_name: {"task_name": task_name, "task": instruction}}``.

    A condition adds ``task_name`` to the env's ``make`` and gives the policy the task's instruction
    (:class:`robolearn.eval.suite.Suite`), so ``eval.py env=metaworld eval_suite=metaworld`` evaluates every task
    of the selection on the same seeds and writes one row per task.

    Raises:
        ValueError: a bad selection (:func:`task_names`).
    """
    return {name: {"task_name": name, "task": TASK_DESCRIPTIONS[name]} for name in task_names(tasks)}


def _image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        hw = (int(image_size), int(image_size))
    elif isinstance(image_size, Sequence) and not isinstance(image_size, str) and len(image_size) == 2:
        hw = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    if min(hw) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return hw


def _import_env_classes() -> Mapping[str, type]:
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError as e:
        raise ImportError("env=metaworld needs the metaworld package: pip install --no-deps metaworld==3.1.1 "
                          "(its mujoco==3.3.0 pin is left out on purpose; see docs/benchmark_envs.md)") from e
    return ALL_V3_ENVIRONMENTS


class MetaWorldEnv(gym.Env):
    """One Meta-World task with lerobot's observations: ``{"pixels": (H, W, 3) uint8, "agent_pos": (4,) float32}``.

    Args:
        task_name: one of the 50 tasks (:data:`TASK_DESCRIPTIONS`), e.g. ``reach-v3``.
        image_size: camera image size, ``int`` (square) or ``(height, width)`` in pixels; 480 is lerobot's.
        camera: a camera of the Meta-World scene (``corner2`` (default), ``corner``, ``corner3``, ``corner4``,
            ``topview``, ``behindGripper``, ``gripperPOV``); ``corner2`` is moved and its image flipped as lerobot
            does, the others are rendered as MuJoCo gives them.
        observe_camera: render the camera into ``observation["pixels"]`` every step; False leaves ``pixels`` out of
            the observation (``render()`` still works, for videos).
        max_episode_steps: time limit, env steps (1..500; Meta-World refuses to run an episode past 500).
        terminate_on_success: end the episode (``terminated``) at the first step with ``info["success"]``, as
            lerobot does.
        render_mode: ``"rgb_array"`` (``render()`` returns the camera image) or None.

    ``reset(seed=s)`` draws the object and goal positions from the task's range with a generator seeded by ``s``
    (a reset without a seed continues that generator). ``info`` of every step holds Meta-World's metrics
    (``success``, ``near_object``, ``grasp_success``, ``grasp_reward``, ``in_place_reward``, ``obj_to_target``,
    ``unscaled_reward``) and ``is_success`` (bool). Rewards are Meta-World's v2 shaped rewards, in [0, 10].

    Attributes:
        task_name: the task; ``task``: its language instruction.

    Raises:
        ValueError: an unknown task or camera (the message lists the valid ones), a bad ``image_size``,
            ``max_episode_steps`` outside 1..500, or another ``render_mode``.
        ImportError: metaworld is not installed (the message gives the install command).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": NATIVE_FPS}

    def __init__(self, task_name: str = DEFAULT_TASK, image_size: int | Sequence[int] = DEFAULT_IMAGE_SIZE,
                 camera: str = DEFAULT_CAMERA, observe_camera: bool = True,
                 max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS, terminate_on_success: bool = True,
                 render_mode: str | None = "rgb_array") -> None:
        self.task = task_description(task_name)
        self.task_name = task_name
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"MetaWorldEnv supports render_mode 'rgb_array' (or None), got {render_mode!r}")
        if not 1 <= int(max_episode_steps) <= MAX_PATH_LENGTH:
            raise ValueError(f"max_episode_steps must be in 1..{MAX_PATH_LENGTH} (Meta-World's episode limit), "
                             f"got {max_episode_steps}")
        h, w = _image_hw(image_size)
        self.render_mode = render_mode
        self.observe_camera = bool(observe_camera)
        self.max_episode_steps = int(max_episode_steps)
        self.terminate_on_success = bool(terminate_on_success)
        self.image_size = (h, w)
        self.camera = camera

        env = _import_env_classes()[task_name](render_mode="rgb_array", camera_name=camera, width=w, height=h)
        import mujoco

        model = env.model
        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, str(camera))
        if cam_id < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            env.close()
            raise ValueError(f"unknown Meta-World camera {camera!r}; valid cameras: {', '.join(names)}")
        self._flip = camera == DEFAULT_CAMERA
        if self._flip:
            model.cam_pos[cam_id] = LEROBOT_CORNER2_POS
        # the offscreen buffer (640 x 480 in the scene file) must hold the image; the renderer is made at first use
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), w)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), h)
        # What Meta-World's goal-observable constructors and MT1 tasks set up, with positions drawn per reset from
        # the env's own seeded generator instead of a frozen task vector.
        env._partially_observable = False  # the goal in the 39-d state (the scripted experts read it)
        env.__dict__.pop("sawyer_observation_space", None)  # a cached property computed with the old flag
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        self._env = env

        spaces: dict[str, gym.Space] = {"agent_pos": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)}
        if self.observe_camera:
            spaces["pixels"] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._raw_obs: np.ndarray | None = None
        self._frame: np.ndarray | None = None
        self._steps = 0

    @property
    def raw_observation(self) -> np.ndarray:
        """Meta-World's full 39-d state of the last reset/step (hand, gripper, objects, previous frame, goal).

        Raises:
            RuntimeError: before the first ``reset``.
        """
        if self._raw_obs is None:
            raise RuntimeError("MetaWorldEnv: call reset() before reading the state")
        return self._raw_obs

    def _camera_image(self) -> np.ndarray:
        if self._frame is None:
            image = self._env.render()
            self._frame = np.ascontiguousarray(np.flip(image, (0, 1)) if self._flip else image)
        return self._frame

    def _observation(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {"agent_pos": self.raw_observation[:STATE_DIM].astype(np.float32)}
        if self.observe_camera:
            obs["pixels"] = self._camera_image().copy()
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(int(seed))  # the generator the task's positions are drawn from
        raw, _ = self._env.reset()
        self._raw_obs, self._frame, self._steps = np.asarray(raw, dtype=np.float64), None, 0
        return self._observation(), {"is_success": False}

    def step(self, action):
        """One control step (5 MuJoCo steps).

        Raises:
            ValueError: ``action`` is not 4 numbers.
            RuntimeError: before the first ``reset``.
        """
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"MetaWorldEnv.step needs an action of shape ({ACTION_DIM},), got {action.shape}")
        if self._raw_obs is None:
            raise RuntimeError("MetaWorldEnv: call reset() before step()")
        raw, reward, _, truncated, info = self._env.step(np.clip(action, -1.0, 1.0))
        self._raw_obs, self._frame = np.asarray(raw, dtype=np.float64), None
        self._steps += 1
        success = bool(info.get("success", 0.0))
        info = {**info, "is_success": success}
        terminated = success and self.terminate_on_success
        truncated = bool(truncated) or self._steps >= self.max_episode_steps
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The camera image of the current state, (H, W, 3) uint8 (the observation's frame when it has one);
        None with ``render_mode=None``."""
        if self.render_mode is None:
            return None
        return self._camera_image().copy()

    def close(self) -> None:
        self._env.close()


class MetaWorldExpert(ScriptedExpert):
    """Meta-World's scripted policy of the env's task (``metaworld.policies``), reading the full 39-d state.

    Args:
        env: a :class:`MetaWorldEnv` (any wrapper around it).

    Raises:
        TypeError: ``env`` is not a MetaWorldEnv.
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, MetaWorldEnv):
            raise TypeError(f"MetaWorldExpert needs a MetaWorldEnv, got {type(base).__name__}")
        from metaworld.policies import ENV_POLICY_MAP

        self.base = base
        self.policy = ENV_POLICY_MAP[base.task_name]()

    def reset(self) -> None:
        """Meta-World's policies are stateless: nothing to reset."""

    def act(self, observation: Any = None) -> np.ndarray:
        """The policy's action for the current state, float32 (4,) clipped to [-1, 1]."""
        with warnings.catch_warnings():  # "Constant(s) may be too high": the env clips, as the warning says
            warnings.simplefilter("ignore", UserWarning)
            action = self.policy.get_action(self.base.raw_observation)
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


class MetaWorldEnvSpec(EnvSpec):
    """:class:`~robolearn.envs.factory.EnvSpec` of one Meta-World task (``conf/env/metaworld.yaml``).

    Args:
        make: builds the env (:class:`MetaWorldEnv` partially applied); ``task_name`` is added to it.
        task_name: the task (``env.task_name=reach-v3``).
        task: the instruction given to the policy; None: the task's (:func:`task_description`).
        kwargs: the other :class:`EnvSpec` arguments (``features_map``, ``fps``, ``max_episode_steps``, ...).

    Raises:
        ValueError: an unknown ``task_name`` (the message lists the tasks), or what :class:`EnvSpec` raises.
    """

    def __init__(self, make: Callable[..., gym.Env], task_name: str = DEFAULT_TASK, task: str | None = None,
                 **kwargs: Any) -> None:
        description = task_description(task_name)
        super().__init__(make=functools.partial(make, task_name=task_name), task=task or description, **kwargs)
