"""Evaluation suites (robolearn.eval.suite, ``eval.py eval_suite=<name>``): the config, the table's rows, and a run of
the SO-101 robustness suite with the scripted expert that writes the table, the plot and per-condition videos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from robolearn.envs.so101_perturb import make_perturbations
from robolearn.eval.suite import (SUITE_INFO_NAME, SUITE_PLOT_NAME, SUITE_TABLE_NAME, Suite, evaluate_suite, format_table,
                                  suite_table_rows)
from tests.compose import compose_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _compose(overrides):
    return compose_config("eval", overrides)


def test_robustness_suite_config_builds_every_condition():
    cfg = _compose(["policy=scripted", "eval_suite=so101_robustness"])
    suite = instantiate(cfg.eval_suite, _convert_="all")
    assert isinstance(suite, Suite) and suite.env == ["so101_pick_place", "so101_pick_place_scene_camera"]
    assert cfg.env.name in suite.envs
    assert list(suite.conditions)[0] == "nominal" and suite.conditions["nominal"] == {}
    kinds = set()
    for name, kwargs in suite.conditions.items():
        assert set(kwargs) <= {"perturbation"}, name
        kinds |= set(make_perturbations(kwargs.get("perturbation")).describe())
    assert kinds == {"lighting", "camera", "distractors", "positions", "block"}
    assert _compose(["policy=scripted"]).get("eval_suite") is None  # no suite unless asked for


@pytest.mark.parametrize("conditions, match", [
    ({}, "non-empty"), ({"a b": {}}, "condition name"), ({"x": [1]}, "must map make"),
])
def test_suite_validation(conditions, match):
    with pytest.raises(ValueError, match=match):
        Suite(name="s", conditions=conditions)


def _info(successes, seed=10, pc_ci=(0.0, 100.0)):
    n = len(successes)
    return {"aggregated": {"n_episodes": n, "n_success": sum(successes), "pc_success": 100.0 * sum(successes) / n,
                           "pc_success_ci95": list(pc_ci), "avg_episode_length": 5.0, "select_action_calls": 3,
                           "select_action_ms_mean": 0.1, "select_action_ms_p90": 0.2, "select_action_ms_max": 0.3,
                           "eval_s": 1.0},
            "per_episode": [{"seed": seed + i, "success": s} for i, s in enumerate(successes)]}


def test_table_rows_compare_with_nominal_by_seed():
    rows = suite_table_rows({"nominal": _info([True, True, False, False]), "dim": _info([True, False, True, False])})
    assert [r["condition"] for r in rows] == ["nominal", "dim"]
    assert (rows[0]["delta_pp"], rows[0]["lost"], rows[0]["gained"]) == (0.0, 0, 0)
    assert (rows[1]["delta_pp"], rows[1]["lost"], rows[1]["gained"]) == (0.0, 1, 1)
    assert rows[1]["select_action_ms_p90"] == 0.2
    table = format_table(rows, "t")
    assert "| dim | 50.0 (2/4) | 0.0–100.0 | +0.0 | 1 / 1 |" in table
    no_nominal = suite_table_rows({"dim": _info([True])})
    assert no_nominal[0]["delta_pp"] is None and "| – |" in format_table(no_nominal)


def test_a_suite_for_another_env_is_refused():
    from tests.eval.helpers import ConstantPolicy, pusht_spec

    suite = Suite(name="s", conditions={"nominal": {}}, env="so101_pick_place")
    with pytest.raises(ValueError, match="written for env 'so101_pick_place', not 'pusht'"):
        evaluate_suite(ConstantPolicy([0.0, 0.0]), pusht_spec(), suite, n_episodes=1)
    several = Suite(name="s", conditions={"nominal": {}}, env=["so101_pick_place", "so101_pick_place_scene_camera"])
    with pytest.raises(ValueError, match="'so101_pick_place' or 'so101_pick_place_scene_camera', not 'pusht'"):
        evaluate_suite(ConstantPolicy([0.0, 0.0]), pusht_spec(), several, n_episodes=1)
    listed = Suite(name="s", conditions={"nominal": {}}, env=["so101_pick_place", "pusht"])
    info = evaluate_suite(ConstantPolicy([0.0, 0.0]), pusht_spec(), listed, n_episodes=1)
    assert [row["condition"] for row in info["table"]] == ["nominal"]


def test_eval_py_runs_the_robustness_suite(tmp_path):
    """``python eval.py policy=scripted eval_suite=so101_robustness ...`` in-process: every condition on the same
    seeds, one table (markdown + JSON with provenance), one plot, videos per condition."""
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(REPO))
    import eval as eval_script

    out = tmp_path / "run"
    cfg = _compose(["policy=scripted", "env=so101_pick_place", "eval_suite=so101_robustness", "eval.n_episodes=2",
                    "eval.batch_size=2", "env.max_episode_steps=3", "eval.max_episodes_rendered=1",
                    "env.make.image_size=32", "eval.progress=false", "seed=7", f"paths.output_dir={out}"])
    HydraConfig.instance().set_config(cfg)
    info = eval_script.run_eval(cfg)

    names = list(cfg.eval_suite.conditions)
    assert [r["condition"] for r in info["table"]] == names and len(names) >= 10
    assert info["seeds"] == [7, 8]
    for cond in info["conditions"]:
        assert [e["seed"] for e in cond["per_episode"]] == [7, 8] and [e["length"] for e in cond["per_episode"]] == [3, 3]
        assert {"select_action_ms_mean", "select_action_ms_p90", "pc_success_ci95"} <= set(cond["aggregated"])
        videos = out / "conditions" / cond["name"] / "videos"
        assert [p.name for p in videos.iterdir()] == ["eval_episode_0.mp4"]  # eval.max_episodes_rendered per condition
        assert (out / "conditions" / cond["name"] / "eval_info.json").is_file()
    written = json.loads((out / SUITE_INFO_NAME).read_text())
    assert written["table"] == info["table"] and written["suite"] == "so101_robustness"
    prov = written["provenance"]
    assert set(prov["source"]) >= {"commit", "clean"} and prov["command"].startswith("python ")
    assert {"hardware", "versions", "config", "wall_s"} <= set(prov)
    assert prov["config"]["eval_suite"]["name"] == "so101_robustness" and "hydra" not in prov["config"]
    assert written["conditions"][names.index("light_dim")]["make_kwargs"] == {"perturbation": {"lighting": {"intensity": 0.4}}}
    table = (out / SUITE_TABLE_NAME).read_text()
    assert all(f"| {name} |" in table for name in names)
    assert (out / SUITE_PLOT_NAME).stat().st_size > 1000
    assert not (out / "eval_info.json").exists()  # the suite's files, not a single evaluation's


def test_paraphrase_file_adds_one_language_condition_per_phrasing(tmp_path):
    from robolearn.eval.suite import read_paraphrases

    path = tmp_path / "p.txt"
    path.write_text("# a comment\n\n  Put the cube on the goal.  \ncube to goal\n")
    suite = Suite(name="s", conditions={"nominal": {}, "dim": {"perturbation": {}}}, paraphrases=path)
    assert list(suite.conditions) == ["nominal", "dim", "paraphrase_1", "paraphrase_2"]
    assert suite.conditions["paraphrase_1"] == {"task": "Put the cube on the goal."}
    path.write_text("a\nb\na\n")
    with pytest.raises(ValueError, match=r"p.txt:3: 'a' is listed twice"):
        read_paraphrases(path)
    path.write_text("# only a comment\n")
    with pytest.raises(ValueError, match="holds no instruction"):
        read_paraphrases(path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        Suite(name="s", conditions={"nominal": {}}, paraphrases=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="task=''"):
        Suite(name="s", conditions={"x": {"task": ""}})
    path.write_text("a\n")
    with pytest.raises(ValueError, match="paraphrase_1"):
        Suite(name="s", conditions={"paraphrase_1": {}}, paraphrases=path)


@pytest.mark.parametrize("suite_name, env, source", [("so101_language", "so101_pick_place", "so101_pick_place.txt"),
                                                     ("pusht_language", "pusht", "pusht.txt")])
def test_language_suite_configs_read_the_paraphrase_files(suite_name, env, source):
    from robolearn.eval.suite import read_paraphrases

    cfg = _compose(["policy=scripted", f"env={env}", f"eval_suite={suite_name}"])
    suite = instantiate(cfg.eval_suite, _convert_="all")
    phrasings = read_paraphrases(REPO / "conf" / "paraphrases" / source)
    assert env in suite.envs and len(phrasings) >= 4
    assert list(suite.conditions) == ["nominal"] + [f"paraphrase_{i}" for i in range(1, len(phrasings) + 1)]
    assert [c["task"] for c in list(suite.conditions.values())[1:]] == phrasings
    assert cfg.env.task not in phrasings  # paraphrases, not the instruction itself
    robust = _compose(["policy=scripted", "eval_suite=so101_robustness",
                       f"eval_suite.paraphrases={REPO / 'conf/paraphrases/so101_pick_place.txt'}"])
    assert sum(n.startswith("paraphrase_") for n in instantiate(robust.eval_suite, _convert_="all").conditions) == 5


def test_each_language_condition_gives_the_policy_its_instruction(tmp_path):
    from tests.eval.helpers import ConstantPolicy, pusht_spec

    path = tmp_path / "p.txt"
    path.write_text("shove the T home\nT to target\n")
    policy = ConstantPolicy([256.0, 256.0])
    suite = Suite(name="lang", conditions={"nominal": {}}, env="pusht", paraphrases=path)
    info = evaluate_suite(policy, pusht_spec(max_episode_steps=2), suite, n_episodes=1, seed=3, progress=False,
                          output_dir=tmp_path / "out")
    assert [b["task"] for b in policy.batches] == [["push"]] * 2 + [["shove the T home"]] * 2 + [["T to target"]] * 2
    assert [c["task"] for c in info["conditions"]] == ["push", "shove the T home", "T to target"]
    assert info["conditions"][1]["make_kwargs"] == {}
    assert [e["seed"] for c in info["conditions"] for e in c["per_episode"]] == [3, 3, 3]  # paired seeds
    table = (tmp_path / "out" / SUITE_TABLE_NAME).read_text()
    assert '- paraphrase_2: "T to target"' in table
