"""experiments/reproduce_cpu_scaled.py: argument handling and job plan (fast), and the whole pipeline with --smoke
(slow: about 3 minutes on 2 cores; trains 3 tiny policies, evaluates each for 2 PushT episodes, writes the tables)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import reproduce_cpu_scaled as rep  # noqa: E402


def test_job_plan_and_overrides(tmp_path):
    args = rep.parse_args(["--out", str(tmp_path), "--accelerator", "gpu", "--jobs", "8", "--chunks", "1,10,50",
                           "--seeds", "1,2", "--act-steps", "100", "--train-overrides", "dataset.generator=null"])
    jobs = rep.build_jobs(args, tmp_path)
    assert [j.name for j in jobs] == ["diffusion_state", "act_chunk1_seed1", "act_chunk1_seed2", "act_chunk10_seed1",
                                      "act_chunk10_seed2", "act_chunk50_seed1", "act_chunk50_seed2"]
    train, evaluate = jobs[3].commands
    assert train.argv[1] == "train.py" and evaluate.argv[1] == "eval.py"
    assert {"experiment=cpu_scaled_act_chunk", "policy.chunk_size=10", "seed=1", "trainer.max_steps=100",
            "trainer.accelerator=gpu", f"hydra.run.dir={tmp_path}/runs/act_chunk/2"} <= set(train.argv)
    assert train.argv[-1] == "dataset.generator=null"  # extra overrides come last, so they win
    assert {"env=pusht_keypoints", "eval.n_episodes=50", "device=cuda",
            f"policy.path={tmp_path}/runs/act_chunk/2/checkpoints/pretrained_model"} <= set(evaluate.argv)
    assert "experiment=cpu_scaled_pusht_diffusion_state" in jobs[0].commands[0].argv


def test_smoke_flag_and_bad_arguments(tmp_path, capsys):
    args = rep.parse_args(["--smoke", "--out", str(tmp_path)])
    assert (args.eval_episodes, args.chunks, args.seeds) == (2, [1, 10], [1000])
    assert all("_smoke" in j.commands[0].argv[2] for j in rep.build_jobs(args, tmp_path))
    for bad in (["--jobs", "0"], ["--chunks", "1,x"], ["--accelerator", "tpu"]):
        with pytest.raises(SystemExit):
            rep.parse_args(bad)
    assert "--chunks" in capsys.readouterr().err


def test_refuses_to_overwrite_runs(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileExistsError, match="--force"):
        rep.main(["--smoke", "--out", str(tmp_path)])


@pytest.mark.slow
def test_smoke_pipeline_end_to_end(tmp_path, shared_datasets):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "experiments/reproduce_cpu_scaled.py", "--smoke", "--out", str(tmp_path),
                           "--jobs", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert set(info["stages"]) == {"data_s", "train_eval_s", "collect_s"}
    assert [j["name"] for j in info["jobs"]] == ["prepare_data", "diffusion_state", "act_chunk1_seed1000",
                                                "act_chunk10_seed1000"]
    assert info["machine"]["cpus"] >= 1 and all(c["returncode"] == 0 for j in info["jobs"] for c in j["commands"])
    for name in ("act_chunk_size.md", "act_chunk_size.csv", "act_chunk_size.png", "diffusion_state.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    table = (tmp_path / "act_chunk_size.md").read_text()
    assert "CPU-scaled" in table
    rows = [line for line in table.splitlines() if line.startswith("| 1 |") or line.startswith("| 10 |")]
    assert len(rows) == 2, table  # one row per chunk size, 1 seed each
    for run in ("diffusion_state/0", "act_chunk/0", "act_chunk/1"):
        agg = json.loads((tmp_path / "runs" / run / "eval_info.json").read_text())["aggregated"]
        assert agg["n_episodes"] == 2


def test_collect_skips_experiments_that_were_not_run(tmp_path):
    """``--chunks ""`` runs the Diffusion job only: collecting must not fail on the missing ACT folder."""
    (tmp_path / "runs").mkdir()
    assert rep.collect_results(tmp_path, smoke=True) == {}
