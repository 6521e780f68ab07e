"""Dataset maintenance command lines over the LeRobotDataset v3.0 format core (:mod:`robolearn.datasets`).

- ``python -m robolearn.tools.convert``: lerobot v2.1 datasets and diffusion_policy zarr replay buffers to v3.0.
- ``python -m robolearn.tools.edit``: delete episodes, split, merge, remove or rename features, recompute stats,
  re-encode videos.
- ``python -m robolearn.tools.info``: summary and ``--validate``.
- ``python -m robolearn.tools.viz``: episode plots and frame grids.
- ``python -m robolearn.tools.hub_push``: push to / pull from the Hugging Face Hub.
- ``python -m robolearn.tools.augment_preview``: a PNG grid of frames and their training-image augmentations.

Validation (:mod:`robolearn.datasets.validate`) and crash repair (:mod:`robolearn.datasets.repair`) stay in the
format core because the reader and the writer use them. This package imports only the format core,
:mod:`robolearn.features` and :mod:`robolearn.augment`; :mod:`robolearn.record` uses ``hub_push`` after a recording.
"""
