"""Named perturbations of PushT (gym-pusht), for robustness evaluation (``conf/eval_suite/pusht_*robustness.yaml``).

gym-pusht's ``PushTEnv`` is a 2-D pymunk simulation drawn with pygame on a 512×512 pixel canvas: white background,
the goal zone (a light-green T at ``(256, 256)``, 45°), the grey T block, the blue agent (a disc of radius 15 px) and
four walls (inner faces at 7 and 504 px). Its observation image is that canvas resized to ``observation_width ×
observation_height`` (96×96 here) and ``render()`` the same canvas at ``visualization_width × visualization_height``
(the videos). :class:`PerturbedPushTEnv` subclasses it and takes a :class:`PerturbationSet` (``perturbation=``):

- **Visual** (image env only; the policy's state input ``agent_pos`` is unchanged): ``background`` colour,
  ``goal`` (zone) colour, ``block`` colour, ``distractors`` (shapes drawn on the background, not physical),
  ``view`` (the canvas rotated, zoomed and shifted, like a moved overhead camera) and ``image`` (brightness and
  contrast). They are applied where the canvas is drawn: gym-pusht's ``_render`` calls ``self._draw()``, which
  :meth:`PerturbedPushTEnv._draw` overrides (the only private name this module relies on; with no visual
  perturbation it draws exactly what gym-pusht draws, checked pixel for pixel by ``tests/envs/test_pusht_perturb.py``,
  which also fails if gym-pusht stops calling ``_draw``).
- **Physical / state**: ``block.scale`` (the T's size; the goal zone, which gym-pusht builds from the block's own
  shapes, scales with it, so full coverage stays possible) through gym-pusht's public static ``add_tee``, which
  ``_setup`` calls on the instance; ``positions``: initial poses of the block and/or the agent outside the env's
  reset distribution, given to gym-pusht's public ``reset(options={"reset_to_state": ...})``. gym-pusht's own
  ``damping`` argument (``PushTEnv(damping=...)``) is a further physical condition that needs nothing from here.

gym-pusht's reset distribution (its ``reset``): agent ``(x, y)`` integers in [50, 450) px, block ``(x, y)`` integers
in [100, 400) px, block angle uniform in [-π, π) rad. The block's ``(x, y)`` is its body origin (the middle of the
T's top edge); gym-pusht sets the position and then the angle, which turns the T about its centre of gravity (45 px
from the origin along the stem), so the T's centre lands at ``(x, y + 45)`` px whatever the angle.

What a perturbation draws at reset (distractors, held-out poses) comes from ``numpy.random.default_rng([seed, k])``
with the episode's seed (``k`` differs per perturbation), so every policy sees the same scenes under a seed; a reset
without a seed continues the last seeded generator.

Units: positions and lengths in **pixels** of the 512×512 canvas (x right, y down, as gym-pusht's state), angles in
**radians**, colours **RGB in [0, 1]**. Built from a config mapping by :func:`make_perturbations`
(``{"background": {"rgb": [0.85, 0.8, 0.65]}, ...}``, keys of :data:`PERTURBATIONS`); :func:`make_pusht` is the
``make`` of ``conf/env/pusht.yaml``, and :func:`robolearn.envs.pusht_keypoints.make_pusht_keypoints` takes the state
perturbations (:data:`STATE_PERTURBATIONS`) only.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import gymnasium as gym
import numpy as np

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "pkg_resources is deprecated as an API", category=DeprecationWarning)
    import pygame
import pymunk
import pymunk.pygame_util
import shapely.geometry as sg
from gym_pusht.envs.pusht import PushTEnv, pymunk_to_shapely
from gym_pusht.envs.pymunk_override import DrawOptions

from robolearn.envs.perturb_params import number, set_field, vector

#: gym-pusht's env id and the id under which :class:`PerturbedPushTEnv` is registered (same time limit: 300 steps).
PUSHT_ID = "gym_pusht/PushT-v0"
PERTURBED_ID = "robolearn/PushTPerturbed-v0"

CANVAS = 512  # px, gym-pusht's drawing canvas (square)
WALL_INNER = (7.0, 504.0)  # px, inner faces of gym-pusht's walls (segments at 5 and 506, radius 2), both axes
AGENT_RADIUS = 15.0  # px
#: gym-pusht's reset distribution: [[x_min, y_min], [x_max, y_max]] (max excluded), px.
TRAINING_BLOCK_XY = ((100.0, 100.0), (400.0, 400.0))
TRAINING_AGENT_XY = ((50.0, 50.0), (450.0, 450.0))
GOAL_POSE = (256.0, 256.0, math.pi / 4)  # px, px, rad: gym-pusht's fixed goal
TEE_SCALE = 30  # px, gym-pusht's add_tee default (the T is 4 × 4 scale units; bar and stem 1 unit wide)
#: BlockAppearance.scale outside this range raises.
BLOCK_SCALE_RANGE = (0.75, 1.25)
# gym-pusht's colours (pygame names): the canvas, the goal zone, the block
NOMINAL_BACKGROUND = (255, 255, 255)
NOMINAL_GOAL = tuple(pygame.Color("LightGreen"))[:3]
NOMINAL_BLOCK = tuple(pygame.Color("LightSlateGray"))[:3]

_MAX_DRAWS = 10_000
_RNG_KEYS = {"positions": 3, "distractors": 4}
def _rgb255(rgb: Sequence[float]) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in rgb)  # type: ignore[return-value]

class Perturbation:
    """Base class. A perturbation is a frozen dataclass; :class:`PerturbedPushTEnv` reads its fields."""

    #: whether it changes only what is drawn (refused by the state env, whose observation is not drawn)
    visual = True

    def describe(self) -> dict[str, Any]:
        """The parameters, as plain JSON values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Background(Perturbation):
    """The canvas colour (gym-pusht's is white).

    Args:
        rgb: RGB in [0, 1].

    Raises:
        ValueError: ``rgb`` not 3 numbers in [0, 1].
    """

    rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        set_field(self, "rgb", vector("background.rgb", self.rgb, 3, 0.0, 1.0))


@dataclass(frozen=True)
class GoalAppearance(Perturbation):
    """The goal zone's colour (gym-pusht's is LightGreen, (0.56, 0.93, 0.56)).

    Args:
        rgb: RGB in [0, 1].

    Raises:
        ValueError: ``rgb`` not 3 numbers in [0, 1].
    """

    rgb: tuple[float, float, float] = (144 / 255, 238 / 255, 144 / 255)

    def __post_init__(self) -> None:
        set_field(self, "rgb", vector("goal.rgb", self.rgb, 3, 0.0, 1.0))


@dataclass(frozen=True)
class BlockAppearance(Perturbation):
    """Recolour and resize the T block.

    Args:
        rgb: the block's colour, RGB in [0, 1] (gym-pusht's is LightSlateGray, (0.47, 0.53, 0.6); its drawing fills
            the T with 1.2 × that colour, clipped, and outlines it with the colour itself), or None to keep it.
        scale: factor on the T's size (gym-pusht's ``add_tee(scale=30)``: a 120 × 120 px T with 30 px wide bar and
            stem), within :data:`BLOCK_SCALE_RANGE`. Its mass stays 1; its moment of inertia follows its shapes. The
            goal zone is built from the block's shapes, so it scales with it and full coverage stays reachable.
            Physical as well as visual: a state env is refused (its keypoints describe the nominal T).

    Raises:
        ValueError: ``rgb`` not 3 numbers in [0, 1]; ``scale`` outside the range.
    """

    rgb: tuple[float, float, float] | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.rgb is not None:
            set_field(self, "rgb", vector("block.rgb", self.rgb, 3, 0.0, 1.0))
        set_field(self, "scale", number("block.scale", self.scale, *BLOCK_SCALE_RANGE))


@dataclass(frozen=True)
class ImageAdjust(Perturbation):
    """Brightness and contrast of the drawn frame (observation and video).

    With the canvas ``x`` in [0, 255] and ``m`` its mean grey level (ITU-R 601 luma, as ``cv2.COLOR_RGB2GRAY``),
    every channel becomes ``clip(round(brightness · (m + contrast · (x − m))), 0, 255)``.

    Args:
        brightness: factor in [0.2, 2].
        contrast: factor in [0.2, 2] (1 keeps it; < 1 pulls every pixel towards the mean grey).

    Raises:
        ValueError: a factor outside [0.2, 2].
    """

    brightness: float = 1.0
    contrast: float = 1.0

    def __post_init__(self) -> None:
        set_field(self, "brightness", number("image.brightness", self.brightness, 0.2, 2.0))
        set_field(self, "contrast", number("image.contrast", self.contrast, 0.2, 2.0))

    def apply(self, img: np.ndarray) -> np.ndarray:
        """``img`` ``(H, W, 3)`` uint8 adjusted (a new uint8 array)."""
        mean = float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean())
        gain = self.brightness * self.contrast
        return cv2.addWeighted(img, gain, img, 0.0, self.brightness * (1.0 - self.contrast) * mean)  # saturating


@dataclass(frozen=True)
class ViewShift(Perturbation):
    """The overhead view moved: the whole 512 × 512 canvas rotated and zoomed about its centre, then shifted.

    A pixel at canvas point ``p`` is drawn at ``c + zoom · R(rotation) · (p − c) + translation`` with ``c = (256,
    256)``; uncovered canvas is filled with the background colour. The state (``agent_pos``, in world pixels) is not
    changed: it is the camera that moved.

    Args:
        translation: ``(dx, dy)`` px on the canvas (x right, y down), each at most 64 in magnitude.
        rotation: radians, at most 0.5 in magnitude; positive turns the picture counter-clockwise as seen.
        zoom: factor in [0.8, 1.25] (> 1 is a closer camera).

    Raises:
        ValueError: values out of those ranges or not finite.
    """

    translation: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    zoom: float = 1.0

    def __post_init__(self) -> None:
        set_field(self, "translation", vector("view.translation", self.translation, 2, -64.0, 64.0))
        set_field(self, "rotation", number("view.rotation", self.rotation, -0.5, 0.5))
        set_field(self, "zoom", number("view.zoom", self.zoom, 0.8, 1.25))

    def matrix(self) -> np.ndarray:
        """The ``(2, 3)`` affine map from canvas pixels to shifted pixels (cv2's convention)."""
        c = CANVAS / 2
        m = cv2.getRotationMatrix2D((c, c), math.degrees(self.rotation), self.zoom)
        m[:, 2] += self.translation
        return m

    def apply(self, img: np.ndarray, fill: Sequence[int]) -> np.ndarray:
        """``img`` ``(512, 512, 3)`` uint8 warped; uncovered pixels ``fill`` (RGB 0-255)."""
        return cv2.warpAffine(img, self.matrix(), (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(v) for v in fill))


@dataclass(frozen=True)
class Distractors(Perturbation):
    """Clutter drawn on the background: ``count`` filled shapes (discs, squares, triangles in turn), not physical.

    At every reset each gets a position uniformly inside the walls, a size in ``size`` and an orientation, and a
    colour uniform in [0.1, 0.9]^3. They are drawn before the goal zone, the block and the agent, so they never hide
    them.

    Args:
        count: 1 to 16.
        size: ``(min, max)`` px, the shape's radius (disc) or half-extent, within [4, 48].

    Raises:
        ValueError: values out of those ranges.
    """

    count: int = 6
    size: tuple[float, float] = (12.0, 32.0)

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, (int, np.integer)) or not 1 <= self.count <= 16:
            raise ValueError(f"distractors.count must be an integer in [1, 16], got {self.count!r}")
        set_field(self, "count", int(self.count))
        size = vector("distractors.size", self.size, 2, 4.0, 48.0)
        if size[0] > size[1]:
            raise ValueError(f"distractors.size must be (min, max) with min <= max, got {self.size!r}")
        set_field(self, "size", size)

    def sample(self, rng: np.random.Generator) -> list[tuple[str, list[tuple[int, int]] | tuple[int, int, int],
                                                              tuple[int, int, int]]]:
        """``[(kind, geometry, rgb 0-255)]``: ``("circle", (x, y, r))`` or ``("polygon", [(x, y), ...])``, px."""
        lo, hi = WALL_INNER
        shapes = []
        for i in range(self.count):
            x, y = rng.uniform(lo, hi, 2)
            r = rng.uniform(*self.size)
            angle = rng.uniform(0, 2 * math.pi)
            rgb = tuple(int(v) for v in np.rint(255 * rng.uniform(0.1, 0.9, 3)))
            if i % 3 == 0:
                shapes.append(("circle", (int(round(x)), int(round(y)), int(round(r))), rgb))
                continue
            n = 4 if i % 3 == 1 else 3
            corners = [(x + r * math.cos(angle + 2 * math.pi * k / n), y + r * math.sin(angle + 2 * math.pi * k / n))
                       for k in range(n)]
            shapes.append(("polygon", [(int(round(px)), int(round(py))) for px, py in corners], rgb))
        return shapes


@dataclass(frozen=True)
class HeldOutPoses(Perturbation):
    """Initial poses outside gym-pusht's reset distribution (:data:`TRAINING_BLOCK_XY`, :data:`TRAINING_AGENT_XY`).

    At reset the chosen objects are drawn outside their training box (the block's angle uniform in [-π, π), as
    gym-pusht draws it); an object not held out is drawn from its training box (so under a seed its pose differs from
    the nominal env's, in distribution). A draw is kept when:

    - the whole T (its shapes, after gym-pusht's position-then-angle reset) lies inside the walls with at least
      ``wall_clearance`` px to spare on every side: more than the agent's 30 px diameter, so the agent can get
      between the T and any wall and push it away;
    - the agent's disc lies inside the walls and at least ``agent_clearance`` px from the T;
    - the T covers less than half the goal zone.

    Held-out block poses so lie in a band along the walls, mostly the top one: gym-pusht puts the T's centre 45 px
    below its reset ``(x, y)``, so its training box already reaches the bottom wall. Held-out agent positions lie
    within 50 px of a wall.

    Args:
        objects: ``"block"``, ``"agent"`` or ``"both"``: which start outside their training box.
        wall_clearance: px, in [31, 60].
        agent_clearance: px, in [2, 60].

    Raises:
        ValueError: unknown ``objects`` or a clearance out of range.
        RuntimeError: (at reset) no pose found in 10,000 draws.
    """

    objects: str = "block"
    wall_clearance: float = 35.0
    agent_clearance: float = 10.0

    visual = False

    def __post_init__(self) -> None:
        if self.objects not in ("block", "agent", "both"):
            raise ValueError(f"positions.objects must be 'block', 'agent' or 'both', got {self.objects!r}")
        set_field(self, "wall_clearance", number("positions.wall_clearance", self.wall_clearance, 31.0, 60.0))
        set_field(self, "agent_clearance", number("positions.agent_clearance", self.agent_clearance, 2.0, 60.0))

    @staticmethod
    def _outside(rng: np.random.Generator, box, lo: float, hi: float) -> np.ndarray:
        (x0, y0), (x1, y1) = box
        for _ in range(_MAX_DRAWS):
            xy = rng.integers(int(math.ceil(lo)), int(math.floor(hi)) + 1, 2).astype(np.float64)
            if not (x0 <= xy[0] < x1 and y0 <= xy[1] < y1):
                return xy
        raise RuntimeError(f"positions: no point outside {box} in {_MAX_DRAWS} draws")

    def sample_state(self, env: "PerturbedPushTEnv", rng: np.random.Generator) -> np.ndarray:
        """gym-pusht's reset state ``[agent_x, agent_y, block_x, block_y, block_angle]`` (px, rad) for ``env``."""
        lo, hi = WALL_INNER
        goal = pymunk_to_shapely(env.get_goal_pose_body(np.asarray(GOAL_POSE)), env.tee_at(GOAL_POSE)[1])
        for _ in range(_MAX_DRAWS):
            if self.objects in ("agent", "both"):
                agent = self._outside(rng, TRAINING_AGENT_XY, lo + AGENT_RADIUS + 1, hi - AGENT_RADIUS - 1)
            else:
                agent = rng.integers(50, 450, 2).astype(np.float64)
            if self.objects in ("block", "both"):
                block = self._outside(rng, TRAINING_BLOCK_XY, lo, hi)
            else:
                block = rng.integers(100, 400, 2).astype(np.float64)
            angle = float(rng.uniform(-math.pi, math.pi))
            tee, shapes = env.tee_at((*block, angle))
            verts = np.asarray([tee.local_to_world(v) for s in shapes for v in s.get_vertices()])
            if verts.min() < lo + self.wall_clearance or verts.max() > hi - self.wall_clearance:
                continue
            geom = pymunk_to_shapely(tee, shapes)
            if geom.distance(sg.Point(*agent)) < AGENT_RADIUS + self.agent_clearance:
                continue
            if geom.intersection(goal).area >= 0.5 * goal.area:
                continue
            return np.asarray([*agent, *block, angle])
        raise RuntimeError(f"positions: no initial pose satisfying the clearances in {_MAX_DRAWS} draws")


#: Config names of the perturbations (keys of a condition's ``perturbation`` mapping).
PERTURBATIONS: dict[str, type[Perturbation]] = {
    "background": Background,
    "goal": GoalAppearance,
    "block": BlockAppearance,
    "image": ImageAdjust,
    "view": ViewShift,
    "distractors": Distractors,
    "positions": HeldOutPoses,
}
#: The kinds a state observation (``env=pusht_keypoints``) can be given: they change the initial state only.
STATE_PERTURBATIONS = frozenset({"positions"})


class PerturbationSet:
    """Several perturbations applied together, at most one of each kind; ``set.get(kind)`` is the one of that kind.

    Args:
        perturbations: ``{kind: perturbation}`` (kinds of :data:`PERTURBATIONS`).

    Raises:
        ValueError: an unknown kind, or a perturbation of another kind's class.
    """

    def __init__(self, perturbations: Mapping[str, Perturbation] | None = None) -> None:
        self.perturbations = dict(perturbations or {})
        for kind, p in self.perturbations.items():
            if kind not in PERTURBATIONS or not isinstance(p, PERTURBATIONS[kind]):
                raise ValueError(f"perturbation {kind!r} must be a {PERTURBATIONS.get(kind, Perturbation).__name__}, "
                                 f"got {p!r}; known kinds: {sorted(PERTURBATIONS)}")

    def __bool__(self) -> bool:
        return bool(self.perturbations)

    def get(self, kind: str) -> Any:
        """The perturbation of ``kind``, or None."""
        return self.perturbations.get(kind)

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{kind: parameters}`` (plain JSON)."""
        return {k: p.describe() for k, p in self.perturbations.items()}


def make_perturbations(config: Mapping[str, Mapping[str, Any] | None] | PerturbationSet | None) -> PerturbationSet:
    """A :class:`PerturbationSet` from ``{kind: {argument: value}}`` (kinds of :data:`PERTURBATIONS`; a None or
    empty mapping of arguments takes the defaults), a set, or None (no perturbation).

    Raises:
        ValueError: an unknown kind (the message lists the known ones) or a bad value.
        TypeError: an unknown argument of a perturbation, or a config of another type.
    """
    if config is None:
        return PerturbationSet()
    if isinstance(config, PerturbationSet):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"perturbation must be a mapping {{kind: {{argument: value}}}} or None, got {config!r}")
    out = {}
    for kind, kwargs in config.items():
        if kind not in PERTURBATIONS:
            raise ValueError(f"unknown PushT perturbation {kind!r}; known: {sorted(PERTURBATIONS)}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"perturbation {kind!r} takes a mapping of arguments, got {kwargs!r}")
        try:
            out[kind] = PERTURBATIONS[kind](**dict(kwargs or {}))
        except TypeError as e:
            fields = [f.name for f in dataclasses.fields(PERTURBATIONS[kind])]
            raise TypeError(f"perturbation {kind!r}: {e}; its arguments are {fields}") from None
    return PerturbationSet(out)


class PerturbedPushTEnv(PushTEnv):
    """gym-pusht's ``PushTEnv`` under a :class:`PerturbationSet` (see the module docstring for how each applies).

    Args:
        perturbation: ``{kind: {argument: value}}``, a :class:`PerturbationSet` or None (then it is gym-pusht's env).
        kwargs: ``PushTEnv``'s arguments (``obs_type``, ``render_mode``, ``damping``, ``block_cog``, image sizes).

    Raises:
        ValueError, TypeError: from :func:`make_perturbations`.
        RuntimeError: (at reset) a held-out pose could not be drawn.
    """

    def __init__(self, perturbation: Any = None, **kwargs: Any) -> None:
        self.perturbation = make_perturbations(perturbation)
        self._rngs: dict[str, np.random.Generator] = {}
        self._distractor_shapes: list = []
        super().__init__(**kwargs)

    def _rng(self, kind: str, seed: int | None) -> np.random.Generator:
        if seed is not None:
            self._rngs[kind] = np.random.default_rng([int(seed), _RNG_KEYS[kind]])
        elif kind not in self._rngs:
            self._rngs[kind] = np.random.default_rng()
        return self._rngs[kind]

    def add_tee(self, space, position, angle, scale=TEE_SCALE, color="LightSlateGray", mask=None):
        """gym-pusht's ``add_tee`` (called by its ``_setup`` for the block) with ``block.scale`` and ``block.rgb``."""
        block = self.perturbation.get("block")
        if block is not None:
            scale = scale * block.scale
            if block.rgb is not None:
                color = pygame.Color(*_rgb255(block.rgb))
        return PushTEnv.add_tee(space, position, angle, scale=scale, color=color, mask=mask)

    def tee_at(self, pose: Sequence[float]) -> tuple[pymunk.Body, list[pymunk.Poly]]:
        """A stand-alone T (body and its two shapes; this env's size and centre of gravity) placed as gym-pusht's
        reset places the block at state ``(x, y, angle)`` (px, px, rad): position first, then angle (turning about
        the centre of gravity)."""
        body, shapes = self.add_tee(pymunk.Space(), (256, 300), 0)
        if self.block_cog is not None:
            body.center_of_gravity = self.block_cog
        body.position = (float(pose[0]), float(pose[1]))
        body.angle = float(pose[2])
        return body, shapes

    def reset(self, seed: int | None = None, options: dict | None = None):
        """gym-pusht's reset; with ``positions``, from a held-out state (unless ``options`` has ``reset_to_state``);
        with ``distractors``, new clutter. Draws come from ``default_rng([seed, k])`` (see the module docstring)."""
        distractors = self.perturbation.get("distractors")
        if distractors is not None:
            self._distractor_shapes = distractors.sample(self._rng("distractors", seed))
        positions = self.perturbation.get("positions")
        if positions is not None and not (options and options.get("reset_to_state") is not None):
            state = positions.sample_state(self, self._rng("positions", seed))
            options = {**(options or {}), "reset_to_state": state}
        return super().reset(seed=seed, options=options)

    # gym-pusht 0.1.8's PushTEnv._render() (observation and render()) draws the canvas with self._draw(); this is its
    # drawing (fill, goal zone, space.debug_draw) with the visual perturbations added. tests/envs/test_pusht_perturb.py
    # checks that it equals gym-pusht's pixel for pixel when unperturbed and that _render still calls _draw.
    def _draw(self) -> pygame.Surface:
        p = self.perturbation
        background = NOMINAL_BACKGROUND if p.get("background") is None else _rgb255(p.get("background").rgb)
        goal_color = pygame.Color("LightGreen") if p.get("goal") is None else pygame.Color(*_rgb255(p.get("goal").rgb))
        screen = pygame.Surface((CANVAS, CANVAS))
        screen.fill(background)
        for kind, geometry, rgb in self._distractor_shapes:
            if kind == "circle":
                pygame.draw.circle(screen, rgb, geometry[:2], geometry[2])
            else:
                pygame.draw.polygon(screen, rgb, geometry)
        draw_options = DrawOptions(screen)
        goal_body = self.get_goal_pose_body(self.goal_pose)
        for shape in self.block.shapes:
            goal_points = [goal_body.local_to_world(v) for v in shape.get_vertices()]
            goal_points = [pymunk.pygame_util.to_pygame(point, draw_options.surface) for point in goal_points]
            goal_points += [goal_points[0]]
            pygame.draw.polygon(screen, goal_color, goal_points)
        self.space.debug_draw(draw_options)
        view, image = p.get("view"), p.get("image")
        if view is None and image is None:
            return screen
        img = np.transpose(np.array(pygame.surfarray.pixels3d(screen)), axes=(1, 0, 2))
        if view is not None:
            img = view.apply(img, background)
        if image is not None:
            img = image.apply(img)
        pygame.surfarray.blit_array(screen, np.transpose(img, axes=(1, 0, 2)))
        return screen


if PERTURBED_ID not in gym.registry:
    gym.register(id=PERTURBED_ID, entry_point=f"{__name__}:PerturbedPushTEnv", max_episode_steps=300,
                 kwargs={"obs_type": "state"})


def make_pusht(perturbation: Any = None, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """PushT as ``gymnasium.make`` builds it (time limit, order enforcing), perturbed or not.

    Args:
        perturbation: ``{kind: {argument: value}}`` (:data:`PERTURBATIONS`), a :class:`PerturbationSet`, or None /
            empty: then it is gym-pusht's own ``gym_pusht/PushT-v0``, unchanged.
        max_episode_steps: time limit in steps (None: gym-pusht's 300).
        kwargs: gym-pusht's ``PushTEnv`` arguments and ``gymnasium.make``'s (``disable_env_checker``).

    Raises:
        ValueError, TypeError: a bad perturbation (:func:`make_perturbations`).
    """
    from robolearn.envs.factory import make_gym

    perturbations = make_perturbations(perturbation)
    if not perturbations:
        return make_gym(PUSHT_ID, max_episode_steps=max_episode_steps, **kwargs)
    return make_gym(PERTURBED_ID, package=__name__, max_episode_steps=max_episode_steps, perturbation=perturbations,
                    **kwargs)
