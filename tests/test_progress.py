"""The step progress bar's run-level fields: step out of max_steps, time left, latest rollout success."""

import time
from types import SimpleNamespace

from robolearn.callbacks.progress import StepProgressBar, format_duration


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 365, 3725)] == ["0s", "42s", "6m05s", "1h02m"]


def test_time_left_extrapolates_from_the_steps_of_this_fit():
    bar = StepProgressBar()
    trainer = SimpleNamespace(global_step=100, max_steps=400)
    assert bar.time_left_s(trainer) is None  # before the first batch
    bar._t0, bar._step0 = time.perf_counter() - 10.0, 0  # 100 steps took 10 s
    left = bar.time_left_s(trainer)
    assert 29.0 < left < 31.5
    assert bar.time_left_s(SimpleNamespace(global_step=100, max_steps=-1)) is None
