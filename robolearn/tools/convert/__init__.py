"""Importers from other dataset formats into LeRobotDataset v3.0.

CLI: ``python -m robolearn.tools.convert zarr <path.zarr> --repo-id local/pusht --fps 10 --root <out>``.
"""

from robolearn.tools.convert.zarr_replay import convert_pusht_zarr, pusht_coverage, pusht_reward_success

__all__ = ["convert_pusht_zarr", "pusht_coverage", "pusht_reward_success"]
