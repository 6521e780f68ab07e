"""``StartupTimer``: logs how long a run took from the start of its process to its first training step.

Start-up (imports, config composition, dataset and model build, DataLoader workers, the first batch) is what a
user waits for before anything is learned; lerobot's ``lerobot-train`` shows it through the time of its first
``step:`` line. This callback writes one line on rank zero when the first training step of a fit has ended::

    first training step (global step 1) done 23.412 s after the process started; training started at 17.905 s

Both times are seconds since the operating system started the process (so they include the interpreter's start
and every import), read from ``/proc`` on Linux (10 ms resolution,
:func:`~robolearn.utils.process_time.process_age_s`). Where ``/proc`` is not available they are counted from the
moment the callback was constructed instead, and the line says so (``callback construction started``).
``benchmarks/startup.py`` reads this line to compare ``python train.py`` with ``lerobot-train``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L

from robolearn.utils.process_time import process_age_s

log = logging.getLogger("robolearn.startup")

#: printf-style format of the logged line (global step, seconds to the first step, seconds to the training start,
#: and where the clock started); :data:`LINE_PATTERN` in ``benchmarks/startup.py`` parses it.
MESSAGE = "first training step (global step %d) done %.3f s after the %s started; training started at %.3f s"


class StartupTimer(L.Callback):
    """Logs (INFO, logger ``robolearn.startup``) the seconds from the process start to the end of the first
    training step of each fit, and to the start of training; rank zero only, nothing else is logged or stored.

    A resumed run logs the first step it takes (its global step is in the line).
    """

    def __init__(self) -> None:
        self._fallback_t0 = time.perf_counter()  # clock origin where /proc cannot be read
        self._origin = "process" if process_age_s() is not None else "callback construction"
        self._train_start_s: float | None = None
        self._done = False

    def _age_s(self) -> float:
        age = process_age_s() if self._origin == "process" else None
        return age if age is not None else time.perf_counter() - self._fallback_t0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_start_s, self._done = self._age_s(), False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._done:
            return
        self._done = True
        if trainer.is_global_zero:
            start = self._train_start_s if self._train_start_s is not None else float("nan")
            log.info(MESSAGE, int(trainer.global_step), self._age_s(), self._origin, start)
