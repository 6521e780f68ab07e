"""Scripted demonstrations: datasets that a scripted expert records in simulation on first use.

This package sits above :mod:`robolearn.datasets` (the writer), :mod:`robolearn.envs` (the simulators and their
experts), :mod:`robolearn.record` and :mod:`robolearn.teleop` (the recording path), and none of them imports it.

- :func:`robolearn.demos.so101_pick_place.generate_so101_pick_place`: the embedded default dataset.
- :func:`robolearn.demos.scripted_record.record_scripted_dataset`: any simulated robot with a scripted expert.
"""
