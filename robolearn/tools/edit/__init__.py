"""Dataset editing tools: each operation reads LeRobotDataset v3.0 folders and writes a NEW one.

CLI: ``python -m robolearn.tools.edit <op> ...`` with ops ``delete-episodes``, ``split``, ``merge``,
``remove-feature``, ``rename-feature``, ``recompute-stats``, ``reencode-videos`` (see ``--help``).
"""

from robolearn.tools.edit.ops import (
    copy_episodes,
    delete_episodes,
    merge_datasets,
    recompute_stats,
    reencode_videos,
    remove_feature,
    rename_feature,
    split_dataset,
)

__all__ = ["copy_episodes", "delete_episodes", "merge_datasets", "recompute_stats", "reencode_videos",
           "remove_feature", "rename_feature", "split_dataset"]
