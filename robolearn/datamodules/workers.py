"""The DataLoader worker count of the DataModules: an integer, or ``"auto"``.

``"auto"`` is one worker per core this process may run on (``os.sched_getaffinity``, which honours a SLURM or cgroup
CPU set), at most :data:`AUTO_MAX_WORKERS`. Measured (``benchmarks/results/realistic_loading.json``, 2-core CPU,
batch 32, two 640x480 cameras with a 2-frame window): decoding-bound loading is fastest with as many workers as
cores (AV1 29.7 / 50.8 / 45.2 samples/s with 0 / 2 / 4 workers; H.264 45.6 / 85.1 / 70.7), and more workers than
cores is slower. A small dataset served from the decoded-frame cache is fastest in the training process itself
(the 96x96 PushT fixture 6,608 / 3,777 / 3,547 samples/s), but two workers still serve far more than a training
step consumes, so low-dimensional and small-image configs choose 0 explicitly. The cap bounds memory: each worker
holds its batches in flight (about 1.5 GiB peak per worker for the 640x480 float32 batches above).
"""

from __future__ import annotations

import os

AUTO = "auto"
#: ``"auto"`` never starts more workers than this.
AUTO_MAX_WORKERS = 8


def resolve_num_workers(num_workers: int | str) -> int:
    """The worker count for ``num_workers``: an integer >= 0 as given, ``"auto"`` as described in the module doc.

    Raises:
        ValueError: a negative number, or a value that is neither an integer nor ``"auto"`` (names it).
    """
    if isinstance(num_workers, str):
        if num_workers.strip().lower() == AUTO:
            return max(1, min(len(os.sched_getaffinity(0)), AUTO_MAX_WORKERS))
        try:
            num_workers = int(num_workers)
        except ValueError:
            raise ValueError(f"num_workers must be an integer >= 0 or 'auto', got {num_workers!r}") from None
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0 or 'auto', got {num_workers!r}")
    return num_workers
