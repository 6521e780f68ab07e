"""``python -m robolearn.tools.convert <format> ...``: convert a dataset into LeRobotDataset v3.0.

Formats:
    zarr  Diffusion Policy's PushT replay buffer (``pusht_cchi_v7_replay.zarr``).
    v21   LeRobotDataset v2.1 (or v2.0) folder (see ``robolearn/tools/convert/v21.py``).
"""

from __future__ import annotations

import argparse
import sys

from robolearn.tools.convert.v21 import add_v21_parser
from robolearn.tools.convert.zarr_replay import PUSHT_TASK, main_zarr


def build_parser() -> argparse.ArgumentParser:
    """The CLI parser (one sub-command per source format)."""
    p = argparse.ArgumentParser(prog="python -m robolearn.tools.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="format", required=True)
    z = sub.add_parser("zarr", help="Diffusion Policy PushT zarr replay buffer")
    z.add_argument("path", help="path to the .zarr folder")
    z.add_argument("--repo-id", required=True, help="dataset id recorded in the output, e.g. local/pusht")
    z.add_argument("--root", required=True, help="output folder (must not exist)")
    z.add_argument("--fps", type=int, default=10, help="frame rate of the recording (default 10)")
    z.add_argument("--max-episodes", type=int, default=None, help="convert only the first N episodes")
    z.add_argument("--vcodec", default="auto", help="video encoder: auto, libsvtav1, libx264, ...")
    z.add_argument("--task", default=PUSHT_TASK, help="task string of every frame")
    z.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    z.set_defaults(func=main_zarr)
    add_v21_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
