"""PushT perturbations (robolearn.envs.pusht_perturb): each changes the drawn frame or the initial state as intended,
unperturbed drawing is gym-pusht's pixel for pixel, held-out poses are deterministic and leave the T pushable, and
the suites conf/eval_suite/pusht_robustness.yaml and pusht_keypoints_robustness.yaml build every condition and run."""

from __future__ import annotations

import inspect
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely.geometry as sg
from gym_pusht.envs.pusht import PushTEnv, pymunk_to_shapely

from robolearn.envs.pusht_perturb import (AGENT_RADIUS, GOAL_POSE, NOMINAL_BLOCK, NOMINAL_GOAL, PERTURBATIONS,
                                          STATE_PERTURBATIONS, TRAINING_AGENT_XY, TRAINING_BLOCK_XY, WALL_INNER,
                                          PerturbedPushTEnv, make_perturbations, make_pusht)
from tests.compose import compose_config

REPO = Path(__file__).resolve().parents[2]
FULL = dict(obs_type="pixels_agent_pos", observation_width=512, observation_height=512)  # the canvas, not resized


def _frame(perturbation=None, seed=0, **kw) -> np.ndarray:
    env = PerturbedPushTEnv(perturbation=perturbation, **{**FULL, **kw})
    obs, _ = env.reset(seed=seed)
    return obs["pixels"]


def _near(img: np.ndarray, rgb, tol: float = 3) -> np.ndarray:
    return np.all(np.abs(img.astype(int) - np.asarray(rgb, dtype=int)) <= tol, axis=-1)


def _fill(rgb255) -> tuple:
    # gym-pusht's DrawOptions fills a polygon with 1.2 x its colour (clipped) and outlines it with the colour
    return tuple(min(255, int(1.2 * c)) for c in rgb255)


def _inside(xy, box) -> bool:
    (x0, y0), (x1, y1) = box
    return bool(x0 <= xy[0] < x1 and y0 <= xy[1] < y1)


def _drawn(nominal: np.ndarray) -> np.ndarray:
    """Pixels gym-pusht draws over its white canvas, less a 12 px border (the walls are anti-aliased lines, blended
    with what lies under them)."""
    drawn = ~_near(nominal, (255, 255, 255), 0)
    drawn[:12], drawn[-12:], drawn[:, :12], drawn[:, -12:] = False, False, False, False
    return drawn


@pytest.fixture(scope="module")
def nominal() -> np.ndarray:
    return _frame()


def test_unperturbed_env_draws_what_gym_pusht_draws():
    """The one private hook (``_draw``, reimplemented): gym-pusht must still draw through it, and without visual
    perturbations the frames equal gym-pusht's, observation and render(), over a few steps."""
    assert "self._draw()" in inspect.getsource(PushTEnv._render), "gym-pusht no longer draws with _draw()"
    assert "self.add_tee(" in inspect.getsource(PushTEnv._setup), "gym-pusht no longer builds the block with add_tee"
    kw = dict(obs_type="pixels_agent_pos", visualization_width=128, visualization_height=128)
    ref, ours = PushTEnv(**kw), PerturbedPushTEnv(perturbation={"positions": {}}, **kw)
    for seed in (0, 1):
        state = ours.perturbation.get("positions").sample_state(ours, np.random.default_rng(seed))
        a, _ = ref.reset(seed=seed, options={"reset_to_state": state})
        b, _ = ours.reset(seed=seed, options={"reset_to_state": state})
        for action in ([200.0, 300.0], [260.0, 250.0], [300.0, 200.0]):
            assert np.array_equal(a["pixels"], b["pixels"]) and np.array_equal(ref.render(), ours.render())
            a, *_ = ref.step(np.asarray(action))
            b, *_ = ours.step(np.asarray(action))


def test_make_pusht_is_gym_pusht_unless_perturbed():
    plain = make_pusht(obs_type="state", disable_env_checker=True, max_episode_steps=7)
    assert type(plain.unwrapped) is PushTEnv and plain.spec.max_episode_steps == 7
    perturbed = make_pusht({"background": {"rgb": [0, 0, 0]}}, obs_type="state", disable_env_checker=True)
    assert type(perturbed.unwrapped) is PerturbedPushTEnv and perturbed.spec.max_episode_steps == 300
    assert perturbed.unwrapped.perturbation.describe() == {"background": {"rgb": [0.0, 0.0, 0.0]}}


def test_background_colour(nominal):
    img = _frame({"background": {"rgb": [0.85, 0.8, 0.65]}})
    bg = (217, 204, 166)
    assert _near(nominal, (255, 255, 255), 0).mean() > 0.5 and _near(img, bg, 0).mean() > 0.5
    assert not _near(img, (255, 255, 255), 0).any()
    drawn = _drawn(nominal)  # everything drawn on the canvas stays as it was
    assert np.array_equal(img[drawn], nominal[drawn])


def test_block_and_goal_colours(nominal):
    grey, orange = _fill(NOMINAL_BLOCK), _fill((242, 140, 26))
    img = _frame({"block": {"rgb": [0.95, 0.55, 0.1]}})
    assert _near(nominal, grey).sum() > 3000 and _near(img, grey).sum() == 0
    assert abs(int(_near(img, orange).sum()) - int(_near(nominal, grey).sum())) < 50
    img = _frame({"goal": {"rgb": [1.0, 0.6, 0.6]}})
    assert _near(nominal, NOMINAL_GOAL, 0).sum() > 3000 and _near(img, NOMINAL_GOAL, 0).sum() == 0
    assert _near(img, (255, 153, 153), 0).sum() == _near(nominal, NOMINAL_GOAL, 0).sum()


def test_brightness_and_contrast(nominal):
    dark = _frame({"image": {"brightness": 0.7}})
    assert dark.mean() == pytest.approx(0.7 * nominal.mean(), abs=1.0)
    flat = _frame({"image": {"contrast": 0.5}})
    assert flat.astype(float).std() == pytest.approx(0.5 * nominal.astype(float).std(), rel=0.02)
    assert flat.mean() == pytest.approx(nominal.mean(), abs=2.0)


def test_view_shift_moves_the_picture(nominal):
    img = _frame({"view": {"translation": [16, 10]}})
    assert np.array_equal(img[10:, 16:], nominal[:-10, :-16])
    assert _near(img[:10], (255, 255, 255), 0).all() and _near(img[:, :16], (255, 255, 255), 0).all()
    zoomed = _frame({"view": {"rotation": 0.3, "zoom": 1.2}, "background": {"rgb": [0.0, 0.0, 0.0]}})
    before, after = _near(nominal, NOMINAL_GOAL, 0), _near(zoomed, NOMINAL_GOAL, 0)
    assert 1.3 < after.sum() / before.sum() < 1.5  # area × zoom² = 1.44, less the interpolated edge pixels
    centroid = lambda mask: np.argwhere(mask)[:, ::-1].mean(axis=0)  # noqa: E731  (x, y) px
    matrix = make_perturbations({"view": {"rotation": 0.3, "zoom": 1.2}}).get("view").matrix()
    assert np.allclose(centroid(after), matrix @ [*centroid(before), 1.0], atol=3.0)  # the goal zone moved with it
    assert _near(zoomed[:3, :3], (0, 0, 0), 0).all()  # the corners turned out of view show the background
    assert not np.array_equal(_frame({"view": {"rotation": 0.1}}), nominal)


def test_distractors_are_drawn_under_everything_and_follow_the_seed(nominal):
    a, b = _frame({"distractors": {"count": 6}}, seed=0), _frame({"distractors": {"count": 6}}, seed=1)
    assert np.array_equal(a, _frame({"distractors": {"count": 6}}, seed=0)) and not np.array_equal(a, b)
    assert (~_near(a, (255, 255, 255), 0) & _near(nominal, (255, 255, 255), 0)).sum() > 2000  # clutter on the canvas
    drawn = _drawn(nominal)
    assert np.array_equal(a[drawn], nominal[drawn])  # goal zone, T and agent are drawn on top, unchanged


@pytest.mark.parametrize("scale", [0.85, 1.15])
def test_block_scale_scales_the_t_and_the_goal_zone(scale):
    away = {"reset_to_state": [60.0, 460.0, 400.0, 60.0, 0.0]}  # the T in the top right corner, off the goal zone
    env = PerturbedPushTEnv(perturbation={"block": {"scale": scale}}, **FULL)
    obs, _ = env.reset(seed=0, options=away)
    goal = pymunk_to_shapely(env.get_goal_pose_body(env.goal_pose), env.block.shapes)
    for geom in (pymunk_to_shapely(env.block, env.block.shapes), goal):
        assert geom.area == pytest.approx(scale ** 2 * (120 * 30 + 90 * 30), rel=1e-6)
    ref, _ = PerturbedPushTEnv(**FULL).reset(seed=0, options=away)
    assert _near(obs["pixels"], NOMINAL_GOAL, 0).sum() == pytest.approx(
        scale ** 2 * _near(ref["pixels"], NOMINAL_GOAL, 0).sum(), rel=0.03)
    # the scaled T placed exactly on the goal pose covers the (scaled) goal zone: the task is still solvable
    env.block.angle, env.block.position = GOAL_POSE[2], GOAL_POSE[:2]
    _, _, terminated, _, info = env.step(np.asarray(env.agent.position))
    assert info["coverage"] > 0.999 and terminated


def _pose(env):
    """The T's vertices (8, 2) (sorted) and its reset ``(x, y)`` (px): its centre of gravity is 45 px below it."""
    b = env.block
    verts = np.asarray(sorted(tuple(b.local_to_world(v)) for s in b.shapes for v in s.get_vertices()))
    return verts, np.asarray(b.local_to_world(b.center_of_gravity)) - (0.0, 45.0)


def test_held_out_poses_are_outside_training_inside_the_arena_and_deterministic():
    env = PerturbedPushTEnv(perturbation={"positions": {"objects": "block"}}, obs_type="state")
    lo, hi = WALL_INNER
    states = []
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        verts, xy = _pose(env)
        agent = np.asarray(env.agent.position)
        assert not _inside(xy, TRAINING_BLOCK_XY) and _inside(agent, TRAINING_AGENT_XY)
        assert verts.min() >= lo + 35 - 1e-6 and verts.max() <= hi - 35 + 1e-6
        assert pymunk_to_shapely(env.block, env.block.shapes).distance(sg.Point(*agent)) >= AGENT_RADIUS + 10 - 1e-6
        states.append(obs)
    again = PerturbedPushTEnv(perturbation={"positions": {"objects": "block"}}, obs_type="state")
    assert all(np.array_equal(again.reset(seed=s)[0], states[s]) for s in (0, 7))
    assert len({tuple(np.round(s, 6)) for s in states}) == 20
    env = PerturbedPushTEnv(perturbation={"positions": {"objects": "agent"}}, obs_type="state")
    for seed in range(10):
        env.reset(seed=seed)
        agent = np.asarray(env.agent.position)
        assert not _inside(agent, TRAINING_AGENT_XY) and _inside(_pose(env)[1], TRAINING_BLOCK_XY)
        assert np.all(agent >= lo + AGENT_RADIUS) and np.all(agent <= hi - AGENT_RADIUS)
    # reset_to_state wins over the held-out draw
    obs, _ = env.reset(seed=0, options={"reset_to_state": [60.0, 60.0, 256.0, 256.0, 0.0]})
    assert obs[:2].tolist() == [60.0, 60.0]


def test_held_out_block_can_be_pushed_off_the_wall():
    """Solvability, as far as it is checked here (there is no scripted PushT expert): from each held-out pose the
    agent fits between the T and its nearest wall, and pushing straight away from that wall, through the T's centre,
    moves the T at least 60 px inwards."""
    env = PerturbedPushTEnv(perturbation={"positions": {"objects": "block"}}, obs_type="state")
    lo, hi = WALL_INNER
    for seed in range(10):
        env.reset(seed=seed)
        verts, _ = _pose(env)
        gaps = {(0, 1): verts[:, 0].min() - lo, (0, -1): hi - verts[:, 0].max(),
                (1, 1): verts[:, 1].min() - lo, (1, -1): hi - verts[:, 1].max()}
        (axis, sign), gap = min(gaps.items(), key=lambda kv: kv[1])
        assert gap > 2 * AGENT_RADIUS
        cog = np.asarray(env.block.local_to_world(env.block.center_of_gravity))
        start = cog.copy()
        start[axis] = lo + AGENT_RADIUS + 2 if sign > 0 else hi - AGENT_RADIUS - 2
        # the same T (its reset (x, y) is 45 px above its centre of gravity), the agent in the gap
        env.reset(seed=seed, options={"reset_to_state": [*start, *(cog - (0.0, 45.0)), env.block.angle]})
        assert np.allclose(_pose(env)[0], verts)
        normal = np.zeros(2)
        normal[axis] = sign
        for k in range(40):
            env.step(start + normal * min(8.0 * (k + 1), 200.0))
        moved = (np.asarray(env.block.local_to_world(env.block.center_of_gravity)) - cog) @ normal
        assert moved > 60, (seed, moved)


def test_damping_condition_lets_the_t_slide():
    """``slippery`` is gym-pusht's own ``damping``: the T keeps moving after the agent stops pushing."""
    slide = {}
    for damping in (None, 0.05):
        env = make_pusht(obs_type="state", damping=damping, disable_env_checker=True).unwrapped
        env.reset(options={"reset_to_state": [256.0, 400.0, 256.0, 200.0, 0.0]})
        for k in range(12):
            env.step(np.asarray([256.0, 400.0 - 15 * (k + 1)]))
        y = env.block.position[1]
        for _ in range(10):
            env.step(np.asarray([256.0, 500.0]))
        slide[damping] = y - env.block.position[1]
    assert slide[None] < 3 and slide[0.05] > 30


def test_keypoints_env_takes_state_perturbations_only():
    from robolearn.envs.pusht_keypoints import block_keypoints, make_pusht_keypoints

    env = make_pusht_keypoints(perturbation={"positions": {"objects": "block"}})
    obs, _ = env.reset(seed=3)
    block = env.unwrapped.block
    assert np.allclose(obs["environment_state"], block_keypoints(*block.position, block.angle).reshape(18))
    assert not _inside(_pose(env.unwrapped)[1], TRAINING_BLOCK_XY)
    for kind in sorted(set(PERTURBATIONS) - STATE_PERTURBATIONS):
        with pytest.raises(ValueError, match="observes the state"):
            make_pusht_keypoints(perturbation={kind: {}})


@pytest.mark.parametrize("config, error, match", [
    ({"fog": {}}, ValueError, "unknown PushT perturbation"),
    ({"background": {"rgb": [1, 2, 0]}}, ValueError, "background.rgb"),
    ({"block": {"scale": 2.0}}, ValueError, "block.scale"),
    ({"image": {"brightness": 0.0}}, ValueError, "image.brightness"),
    ({"view": {"translation": [100, 0]}}, ValueError, "view.translation"),
    ({"distractors": {"count": 0}}, ValueError, "distractors.count"),
    ({"positions": {"objects": "goal"}}, ValueError, "positions.objects"),
    ({"positions": {"wall_clearance": 20}}, ValueError, "wall_clearance"),
    ({"view": {"shear": 1}}, TypeError, "its arguments are"),
    ([1], TypeError, "mapping"),
])
def test_bad_values_raise(config, error, match):
    with pytest.raises(error, match=match):
        make_perturbations(config)


def _suite(name, env):
    from hydra.utils import instantiate

    cfg = compose_config("eval", ["policy=scripted", f"env={env}", f"eval_suite={name}",
                                  "env.make.visualization_width=96", "env.make.visualization_height=96"])
    return cfg, instantiate(cfg.env), instantiate(cfg.eval_suite, _convert_="all")


@pytest.mark.parametrize("name, env", [("pusht_robustness", "pusht"), ("pusht_keypoints_robustness", "pusht_keypoints")])
def test_suite_configs_build_every_condition(name, env):
    _, spec, suite = _suite(name, env)
    assert suite.env == env == spec.name and list(suite.conditions)[0] == "nominal"
    kinds = set()
    for cond, kwargs in suite.conditions.items():
        assert set(kwargs) <= {"perturbation", "damping"}, cond
        kinds |= set(make_perturbations(kwargs.get("perturbation")).describe())
        e = spec.with_make_kwargs(kwargs).make_env()
        obs, _ = e.reset(seed=0)
        assert set(obs) == set(spec.features_map) and e.render().shape == (96, 96, 3)
        e.close()
    _, _, state_suite = _suite("pusht_keypoints_robustness", "pusht_keypoints")
    if env == "pusht":  # the state conditions are written once, in the keypoints suite, and included here
        assert kinds == set(PERTURBATIONS) and len(suite.conditions) == 13
        assert all(suite.conditions[c] == k for c, k in state_suite.conditions.items())
    else:
        assert kinds == set(STATE_PERTURBATIONS) and "damping" in suite.conditions["slippery"]


def test_eval_py_runs_the_pusht_robustness_suite(shared_datasets, tmp_path):
    """``python eval.py eval_suite=pusht_robustness env=pusht policy.path=<tiny ACT> ...`` in-process: every condition
    on the same seeds, the table, the plot and one video per condition."""
    from hydra.core.hydra_config import HydraConfig

    from robolearn.eval.suite import SUITE_INFO_NAME, SUITE_PLOT_NAME, SUITE_TABLE_NAME
    from tests.eval.helpers import PUSHT_DS, export_tiny_pusht_act

    sys.path.insert(0, str(REPO))
    import eval as eval_script

    model = export_tiny_pusht_act(shared_datasets / PUSHT_DS, tmp_path / "pretrained_model")
    out = tmp_path / "run"
    cfg = compose_config("eval", [f"policy.path={model}", "env=pusht", "eval_suite=pusht_robustness",
                                  "eval.n_episodes=1", "env.max_episode_steps=2", "eval.max_episodes_rendered=1",
                                  "env.make.visualization_width=96", "env.make.visualization_height=96",
                                  "eval.progress=false", "seed=3", f"paths.output_dir={out}"])
    HydraConfig.instance().set_config(cfg)
    info = eval_script.run_eval(cfg)
    names = list(cfg.eval_suite.conditions)
    assert [r["condition"] for r in info["table"]] == names and info["seeds"] == [3]
    for cond in info["conditions"]:
        assert [e["length"] for e in cond["per_episode"]] == [2]
        assert [p.name for p in (out / "conditions" / cond["name"] / "videos").iterdir()] == ["eval_episode_0.mp4"]
    written = json.loads((out / SUITE_INFO_NAME).read_text())
    assert written["suite"] == "pusht_robustness" and written["env"] == "pusht"
    assert written["conditions"][names.index("dark")]["make_kwargs"] == {"perturbation": {"image": {"brightness": 0.7}}}
    table = (out / SUITE_TABLE_NAME).read_text()
    assert all(f"| {name} |" in table for name in names) and (out / SUITE_PLOT_NAME).stat().st_size > 1000


def test_keypoints_suite_runs(tmp_path):
    from robolearn.eval.suite import SUITE_PLOT_NAME, SUITE_TABLE_NAME, evaluate_suite
    from tests.eval.helpers import ConstantPolicy

    _, spec, suite = _suite("pusht_keypoints_robustness", "pusht_keypoints")
    spec.max_episode_steps = 2
    info = evaluate_suite(ConstantPolicy([256.0, 256.0]), spec, suite, n_episodes=2, batch_size=2, seed=5,
                          max_episodes_rendered=1, output_dir=tmp_path, progress=False)
    assert [r["condition"] for r in info["table"]] == list(suite.conditions)
    starts = {c["name"]: c for c in info["conditions"]}
    assert all(len(c["video_paths"]) == 1 and Path(c["video_paths"][0]).is_file() for c in starts.values())
    assert (tmp_path / SUITE_TABLE_NAME).is_file() and (tmp_path / SUITE_PLOT_NAME).is_file()
    assert math.isfinite(info["table"][0]["avg_episode_length"])
