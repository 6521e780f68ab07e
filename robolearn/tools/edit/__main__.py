"""``python -m robolearn.tools.edit <op> ...``: edit LeRobotDataset v3.0 folders into NEW folders.

Ops:
    delete-episodes  ROOT --episodes 0,3,5-7 --out DIR
    split            ROOT --splits train=0.8,val=0.2 --out DIR      (writes DIR/train, DIR/val)
    merge            ROOT ROOT [ROOT ...] --out DIR
    remove-feature   ROOT --feature KEY [--feature KEY ...] --out DIR
    rename-feature   ROOT --rename OLD=NEW [--rename OLD=NEW ...] --out DIR
    recompute-stats  ROOT --out DIR
    reencode-videos  ROOT --vcodec libsvtav1 --crf 30 --g 2 [--preset 12] --out DIR

ROOT is a dataset folder or a repo id under $HF_LEROBOT_HOME. Inputs are never modified.
"""

from __future__ import annotations

import argparse
import sys

from robolearn.tools.edit import ops
from robolearn.tools.edit.source import parse_episode_list, resolve_root


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        for part in item.split(","):
            if "=" not in part:
                raise SystemExit(f"error: {what} item {part!r} must look like KEY=VALUE")
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    """The CLI parser (one sub-command per operation)."""
    p = argparse.ArgumentParser(prog="python -m robolearn.tools.edit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="op", required=True)

    def add(name: str, help: str, multi: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.add_argument("roots" if multi else "root", nargs="+" if multi else None,
                        help="dataset folder(s) or repo id(s)")
        sp.add_argument("--out", required=True, help="output folder (must not exist)")
        return sp

    add("delete-episodes", "drop episodes").add_argument("--episodes", required=True, help="e.g. 0,3,5-7")
    add("split", "split by episode fractions").add_argument("--splits", required=True, help="e.g. train=0.8,val=0.2")
    add("merge", "concatenate datasets with identical features and fps", multi=True)
    add("remove-feature", "drop features").add_argument("--feature", action="append", required=True)
    add("rename-feature", "rename features").add_argument("--rename", action="append", required=True,
                                                          help="OLD=NEW, e.g. observation.images.top=observation.images.front")
    add("recompute-stats", "recompute per-episode and global stats")
    r = add("reencode-videos", "decode and re-encode every video")
    r.add_argument("--vcodec", default="libsvtav1", help="libsvtav1 (av1), libx264 (h264), libx265 (hevc), ...")
    r.add_argument("--crf", type=int, default=30)
    r.add_argument("--g", type=int, default=2, help="GOP size (keyframe interval, frames)")
    r.add_argument("--preset", default=None)
    r.add_argument("--pix-fmt", default="yuv420p")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one edit op; returns the exit code (0 on success)."""
    a = build_parser().parse_args(argv)
    if a.op == "merge":
        out = ops.merge_datasets([resolve_root(r) for r in a.roots], a.out)
        print(f"wrote {out}")
        return 0
    root = resolve_root(a.root)
    if a.op == "delete-episodes":
        out = ops.delete_episodes(root, a.out, parse_episode_list(a.episodes))
    elif a.op == "split":
        fr = {k: float(v) for k, v in _pairs([a.splits], "--splits").items()}
        for name, path in ops.split_dataset(root, a.out, fr).items():
            print(f"wrote {name}: {path}")
        return 0
    elif a.op == "remove-feature":
        out = ops.remove_feature(root, a.out, a.feature)
    elif a.op == "rename-feature":
        out = ops.rename_feature(root, a.out, _pairs(a.rename, "--rename"))
    elif a.op == "recompute-stats":
        out = ops.recompute_stats(root, a.out)
    else:
        preset = int(a.preset) if a.preset is not None and str(a.preset).isdigit() else a.preset
        out = ops.reencode_videos(root, a.out, vcodec=a.vcodec, crf=a.crf, g=a.g, preset=preset, pix_fmt=a.pix_fmt)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
