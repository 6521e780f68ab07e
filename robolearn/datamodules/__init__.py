"""Lightning DataModules over LeRobotDatasets: what ``train.py`` instantiates from ``conf/dataset/``.

- :class:`robolearn.datamodules.lerobot.LeRobotDataModule`: one dataset (map-style or streaming), split by
  episode, windows (``delta_timestamps``) set by the policy.
- :class:`robolearn.datamodules.multi.MultiLeRobotDataModule`: several datasets with renamed, padded features.
- :class:`robolearn.datamodules.sampler.EpochShuffleSampler`: the resumable shuffle both use.
- :mod:`robolearn.datamodules.augmented`: training-only, seeded image augmentation (``augment=``) in the workers.
- :mod:`robolearn.datamodules.camera_batches`: camera frames kept uint8 per item and converted to float32 per batch.

This package sits above the format core :mod:`robolearn.datasets`, :mod:`robolearn.augment` and
:mod:`robolearn.features`; nothing below it imports it.
"""
