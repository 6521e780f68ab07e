"""benchmarks/startup.py's parsing helpers (on sample logs of both tools), its README row formatter, and the
StartupTimer callback whose line it reads. No timing is asserted."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from robolearn.callbacks.startup import MESSAGE, StartupTimer
from robolearn.utils.process_time import process_age_s

REPO = Path(__file__).resolve().parents[1]

ROBOLEARN_LOG = """\
[2026-12-07 01:09:15,062][lightning.fabric.utilities.seed][INFO] - Seed set to 1000
[2026-12-07 01:09:25,281][lightning.pytorch.utilities.rank_zero][INFO] - GPU available: False, used: False
[2026-12-07 01:09:25,426][robolearn.train][INFO] - provenance appended to /tmp/x/provenance.jsonl
[2026-12-07 01:09:40,001][robolearn.startup][INFO] - first training step (global step 1) done 31.250 s after the \
process started; training started at 24.500 s
[2026-12-07 01:09:56,133][lightning.pytorch.utilities.rank_zero][INFO] - `Trainer.fit` stopped: `max_steps=3` reached.
"""

LEROBOT_LOG = """\
INFO 2026-12-07 01:02:42 ot_train.py:298 Creating dataset
INFO 2026-12-07 01:02:43 ot_train.py:324 Creating policy
INFO 2026-12-07 01:02:50 ot_train.py:402 Creating optimizer and scheduler
INFO 2026-12-07 01:02:50 ot_train.py:448 num_total_params=262709026 (263M)
Training:   0%|          | 0/6 [00:00<?, ?step/s]INFO 2026-12-07 01:02:50 ot_train.py:597 Start offline training on a \
fixed dataset, with effective batch size: 8
Training:  17%|█▋        | 1/6 [01:48<09:00, 108.04s/step]INFO 2026-12-07 01:04:38 ot_train.py:641 step:1 \
smpl:8 ep:0 epch:0.02 loss:1.247 grdn:21.539 lr:2.0e-07 updt_s:72.326 data_s:35.713 smp/s:0
Training:  33%|███▎      | 2/6 [02:34<04:47, 71.79s/step] INFO 2026-12-07 01:05:24 ot_train.py:641 step:2 smpl:16 \
ep:0 epch:0.03 loss:0.996
INFO 2026-12-07 01:08:23 ot_train.py:641 step:11 smpl:88 ep:0
INFO 2026-12-07 01:08:23 ot_train.py:687 Checkpoint policy after step 6
INFO 2026-12-07 01:08:29 ot_train.py:770 End of training
"""


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("startup")


def _timed(text: str) -> list[tuple[float, str]]:
    """One second per line, as if each line arrived a second after the previous one."""
    return [(float(i + 1), line) for i, line in enumerate(text.splitlines())]


def test_robolearn_marks_and_phases(bench):
    stamps = bench.stamp_marks(_timed(ROBOLEARN_LOG), bench.ROBOLEARN_MARKS)
    assert stamps == {"seed_set": 1.0, "trainer_built": 2.0, "fit_called": 3.0, "first_step": 4.0, "fit_stopped": 5.0}
    ph = bench.phases(stamps, bench.ROBOLEARN_PHASES, wall_s=9.5)
    assert ph == {"import_and_compose": 1.0, "dataset_policy_trainer_build": 1.0, "provenance": 1.0,
                  "fit_setup_and_first_step": 1.0, "remaining_steps": 1.0, "final_checkpoint_export_and_exit": 4.5}
    assert bench.parse_startup_line(ROBOLEARN_LOG) == {"global_step": 1, "first_step_s": 31.25, "clock": "process",
                                                       "train_start_s": 24.5}


def test_lerobot_marks_phases_and_params(bench):
    stamps = bench.stamp_marks(_timed(LEROBOT_LOG), bench.LEROBOT_MARKS)
    # "step:1 " is the first step's line, not step:11 nor step:2 (the first match of each mark is kept)
    assert stamps == {"creating_dataset": 1.0, "creating_policy": 2.0, "creating_optimizer": 3.0,
                      "training_start": 5.0, "first_step": 6.0, "checkpoint": 9.0, "end": 10.0}
    ph = bench.phases(stamps, bench.LEROBOT_PHASES, wall_s=12.0)
    assert ph["import_and_parse"] == 1.0 and ph["first_step"] == 1.0 and ph["final_checkpoint_and_exit"] == 3.0
    assert bench.lerobot_param_count(LEROBOT_LOG) == 262709026


def test_missing_marks_give_none(bench):
    stamps = bench.stamp_marks(_timed("Creating dataset\nTraceback (most recent call last):"), bench.LEROBOT_MARKS)
    assert stamps == {"creating_dataset": 1.0}
    ph = bench.phases(stamps, bench.LEROBOT_PHASES, wall_s=3.0)
    assert ph["import_and_parse"] == 1.0 and ph["dataset_build"] is None and ph["final_checkpoint_and_exit"] is None
    assert bench.parse_startup_line("no such line") is None and bench.lerobot_param_count("") is None
    assert bench.summary([None, 3.0, 1.0, 2.0]) == {"median": 2.0, "values": [None, 3.0, 1.0, 2.0]}
    assert bench.summary([None])["median"] is None
    assert bench.ratio(3.0, 2.0) == 1.5 and bench.ratio(None, 2.0) is None and bench.ratio(1.0, 0.0) is None


def test_the_callback_message_is_what_the_benchmark_parses(bench):
    line = MESSAGE % (7, 12.3456, "process", 10.0)
    assert bench.parse_startup_line(f"[x][robolearn.startup][INFO] - {line}") == {
        "global_step": 7, "first_step_s": 12.346, "clock": "process", "train_start_s": 10.0}
    nan = bench.parse_startup_line(MESSAGE % (0, 1.0, "callback construction", float("nan")))
    assert nan["clock"] == "callback construction" and nan["train_start_s"] is None
    assert re.search(bench.ROBOLEARN_MARKS["first_step"], line)


def test_disk_usage_counts_links_as_links(bench, tmp_path: Path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_000002.ckpt").write_bytes(b"x" * 300)
    (tmp_path / "checkpoints" / "last.ckpt").symlink_to("step_000002.ckpt")
    (tmp_path / "log.txt").write_bytes(b"y" * 10)
    d = bench.disk_usage(tmp_path, largest=1)
    assert d == {"bytes": 310, "files": 2, "symlinks": 1, "largest": [["checkpoints/step_000002.ckpt", 300]]}
    assert bench.disk_usage(tmp_path / "absent") == {"bytes": 0, "files": 0, "symlinks": 0, "largest": []}


def test_run_timed_stamps_lines_in_order(bench, tmp_path: Path):
    log = tmp_path / "out.log"
    usage: dict = {}
    wall, rc, lines = bench.run_timed([sys.executable, "-c", "print('a'); import sys; print('b', file=sys.stderr)"],
                                      tmp_path, bench.child_env(), log, usage=usage)
    assert rc == 0 and [line for _, line in lines] == ["a", "b"]
    assert usage["max_rss_mib"] > 1 if sys.platform == "linux" else True
    _, rc, _ = bench.run_timed([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
                               tmp_path, bench.child_env())
    assert rc == -9
    assert 0 <= lines[0][0] <= lines[1][0] <= wall and log.read_text().split()[1::2] == ["a", "b"]


def test_commands_match_the_settings(bench, tmp_path: Path):
    args = SimpleNamespace(root=tmp_path / "ds", batch_size=8, workers=2, steps=6, down_dims=[64, 128, 256],
                           lerobot_train=Path("/venv/bin/lerobot-train"))
    rl = bench.robolearn_train_cmd(args, tmp_path / "out")
    lr = bench.lerobot_train_cmd(args, tmp_path / "out")
    assert {"policy=diffusion", "trainer.max_steps=6", "dataset.batch_size=8", "dataset.num_workers=2",
            "policy.down_dims=[64,128,256]", f"hydra.run.dir={tmp_path / 'out'}"} <= set(rl)
    assert {"--policy.type=diffusion", "--steps=6", "--batch_size=8", "--num_workers=2", "--policy.horizon=16",
            "--policy.n_obs_steps=2", "--policy.n_action_steps=8", "--policy.down_dims=[64,128,256]",
            f"--output_dir={tmp_path / 'out'}", "--log_freq=1"} <= set(lr)


def _synthetic_results() -> dict:
    def s(median):
        return {"median": median, "values": [median]}

    return {"lerobot_version": "0.6.1",
            "settings": {"steps": 6, "batch_size": 8, "num_workers": 2, "device": "cpu", "help_repeats": 5,
                         "train_repeats": 3},
            "help": {"robolearn": s(6.04), "lerobot": s(6.5)},
            "train": {"robolearn": {"training_start_s": s(15.0), "first_step_s": s(21.0), "wall_s": s(55.0),
                                    "disk_bytes": s(4.2e9)},
                      "lerobot": {"training_start_s": s(14.0), "first_step_s": s(20.0), "wall_s": s(50.0),
                                  "disk_bytes": s(3.15e9)}}}


def test_readme_formatter_on_a_synthetic_result():
    module = _load("readme_table")
    name, result = module._startup(_synthetic_results())
    assert name == ("`startup.py` (`train.py` vs `lerobot-train` 0.6.1: Diffusion, 6 steps, batch 8, 2 workers, "
                    "CPU)")
    assert result == ("`--help` 6.0 vs 6.5 s; training starts at 15.0 vs 14.0 s, first step ends at 21.0 vs "
                      "20.0 s; whole run 55.0 vs 50.0 s; output dir 4.20 vs 3.15 GB (medians of 5 and 3 alternated "
                      "runs)")


def test_startup_timer_logs_once_on_rank_zero(caplog):
    assert process_age_s() is None or process_age_s() > 0
    cb = StartupTimer()
    trainer = SimpleNamespace(global_step=1, is_global_zero=True)
    with caplog.at_level(logging.INFO, logger="robolearn.startup"):
        cb.on_train_start(trainer, None)
        cb.on_train_batch_end(trainer, None, None, None, 0)
        trainer.global_step = 2
        cb.on_train_batch_end(trainer, None, None, None, 1)
    lines = [r.getMessage() for r in caplog.records if r.name == "robolearn.startup"]
    assert len(lines) == 1 and lines[0].startswith("first training step (global step 1) done ")

    other = StartupTimer()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="robolearn.startup"):
        rank1 = SimpleNamespace(global_step=1, is_global_zero=False)
        other.on_train_start(rank1, None)
        other.on_train_batch_end(rank1, None, None, None, 0)
    assert not [r for r in caplog.records if r.name == "robolearn.startup"]
