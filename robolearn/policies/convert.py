"""Convert pretrained policies between lerobot's and robolearn's folder formats.

    python -m robolearn.policies.convert <lerobot dir or Hub id> <out dir>                 # -> robolearn
    python -m robolearn.policies.convert --to-lerobot <robolearn pretrained dir> <out dir>  # -> lerobot 0.6.1

The robolearn output (``config.yaml``, ``model.safetensors``, ``stats.json``) loads with
``robolearn.policies.load_policy``; the lerobot output (``config.json``, ``model.safetensors``, processor
JSON + statistics) loads with lerobot's ``<Policy>.from_pretrained`` and ``make_pre_post_processors``.
Both directions load the source strictly, so a converted policy has exactly the source's tensors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def convert(src: str, out: str | Path, to_lerobot: bool = False, revision: str | None = None) -> Path:
    """Load ``src`` (any format :func:`~robolearn.policies.pretrained.load_policy` reads) and write it to ``out``
    in robolearn's format, or in lerobot's with ``to_lerobot``. Returns ``out``.

    Raises:
        FileExistsError: ``out`` exists and is not empty.
        FileNotFoundError, ValueError: see ``load_policy`` and ``save_lerobot_pretrained``.
    """
    from robolearn.policies.lerobot_compat import save_lerobot_pretrained
    from robolearn.policies.pretrained import load_policy, save_pretrained

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new output folder")
    policy = load_policy(src, revision=revision)
    if to_lerobot:
        return save_lerobot_pretrained(policy, out)
    return save_pretrained(policy, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robolearn.policies.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="source pretrained folder or Hugging Face Hub model id")
    parser.add_argument("out", help="output folder (must not exist or be empty)")
    parser.add_argument("--to-lerobot", action="store_true", help="write lerobot 0.6.1 format instead of robolearn's")
    parser.add_argument("--revision", default=None, help="Hub revision when src is a repo id")
    args = parser.parse_args(argv)
    try:
        out = convert(args.src, args.out, to_lerobot=args.to_lerobot, revision=args.revision)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {'lerobot' if args.to_lerobot else 'robolearn'} pretrained policy to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
