"""Scripted demonstrations: datasets that a scripted expert records in simulation on first use.

This package sits above :mod:`robolearn.datasets` (the writer), :mod:`robolearn.envs` (the simulators and their
experts), :mod:`robolearn.record` and :mod:`robolearn.teleop` (the recording path), and none of them imports it.

- :func:`robolearn.demos.scripted_record.record_scripted_dataset`: the one recording path of simulated
  demonstrations (``record.py``'s episode with a scripted teleoperator, in worker processes).
- :func:`robolearn.demos.so101_pick_place.generate_so101_pick_place`: the embedded default dataset, through it.
"""
