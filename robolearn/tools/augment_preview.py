"""Preview a training-image augmentation on a dataset's frames: a PNG grid, one row per frame, the original frame
followed by ``--n`` augmented versions (what that frame looks like in epochs 0, 1, ..., n-1 of a run with ``--seed``).

    python -m robolearn.tools.augment_preview <root or repo_id> --augment default --out grid.png
    python -m robolearn.tools.augment_preview <root> --augment shift --n 8 --rows 4 --seed 0 --camera observation.image
    python -m robolearn.tools.augment_preview <root> --augment default --override max_num_transforms=1

``--augment`` names ``conf/augment/<name>.yaml`` or is the path of such a yaml; ``--override`` takes Hydra overrides of
it. The augmentation is :class:`robolearn.augment.ImageAugment` with the generator of ``(seed, epoch, index, camera)``
(:func:`robolearn.augment.sample_generator`), ``index`` being the frame's index in the opened dataset (in training it
is the position in the training split, so the pictures are examples, not the exact frames of a run).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from robolearn.augment import ImageAugment, sample_generator

__all__ = ["load_augment", "preview_grid", "main"]


def load_augment(name: str | Path, overrides: Sequence[str] = ()) -> ImageAugment:
    """The :class:`ImageAugment` of ``conf/augment/<name>.yaml`` (or of the yaml file ``name``), with Hydra overrides.

    Raises:
        FileNotFoundError: no such config.
        ValueError: the config has no augmentation (``none``) or a bad value (from :class:`ImageAugment`).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from robolearn.utils.schema import CONF_DIR

    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        conf_dir, config = path.resolve().parent, path.stem
    else:
        conf_dir, config = CONF_DIR / "augment", str(name)
    if not (conf_dir / f"{config}.yaml").is_file():
        choices = sorted(p.stem for p in (CONF_DIR / "augment").glob("*.yaml"))
        raise FileNotFoundError(f"no augmentation config {conf_dir / f'{config}.yaml'} (conf/augment has {choices})")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3"):
            cfg = compose(config, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
    if "_target_" not in cfg:
        raise ValueError(f"augment {name!r} applies no augmentation: nothing to preview")
    return instantiate(cfg, _convert_="all")


def _open(dataset: str | Path, episodes: Sequence[int] | None):
    from robolearn.datasets import LeRobotDataset

    path = Path(dataset)
    if (path / "meta" / "info.json").is_file():
        return LeRobotDataset(f"local/{path.name}", root=path, episodes=episodes)
    return LeRobotDataset(str(dataset), episodes=episodes)


def _to_uint8_hwc(frame: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` float in [0, 1] or uint8 -> ``(H, W, 3)`` uint8."""
    if frame.is_floating_point():
        frame = (frame.clamp(0, 1) * 255).round().to(torch.uint8)
    arr = frame.permute(1, 2, 0).numpy()
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def preview_grid(frames: Sequence[torch.Tensor], indices: Sequence[int], augment: ImageAugment, n: int, seed: int,
                 camera: str, gap: int = 2) -> np.ndarray:
    """The grid as ``(rows * (H + gap), (n + 1) * (W + gap), 3)`` uint8: per row the original ``(C, H, W)`` frame
    then its ``n`` augmented versions (epochs ``0..n-1``); white gaps between tiles."""
    if not frames:
        raise ValueError("preview_grid needs at least one frame")
    h, w = frames[0].shape[-2:]
    grid = np.full((len(frames) * (h + gap), (n + 1) * (w + gap), 3), 255, dtype=np.uint8)
    for r, (frame, index) in enumerate(zip(frames, indices)):
        tiles = [frame] + [augment(frame, sample_generator(seed, epoch, index, camera)) for epoch in range(n)]
        for c, tile in enumerate(tiles):
            grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = _to_uint8_hwc(tile)
    return grid


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="dataset folder (holding meta/info.json) or repo_id")
    p.add_argument("--augment", default="default", help="conf/augment/<name>.yaml, or a yaml path (default: default)")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="Hydra overrides of the config")
    p.add_argument("--out", type=Path, default=Path("augment_preview.png"), help="PNG to write")
    p.add_argument("--n", type=int, default=8, help="augmented versions per frame (columns after the original)")
    p.add_argument("--rows", type=int, default=4, help="frames, spread evenly over the dataset")
    p.add_argument("--frames", type=int, nargs="*", default=None, help="these frame indices instead of --rows")
    p.add_argument("--episode", type=int, default=None, help="only this episode's frames")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--camera", default=None, help="camera key (default: the dataset's first)")
    args = p.parse_args(argv)
    if args.n < 1 or args.rows < 1:
        p.error(f"--n and --rows must be >= 1, got {args.n} and {args.rows}")

    augment = load_augment(args.augment, args.override)
    ds = _open(args.dataset, [args.episode] if args.episode is not None else None)
    cameras = ds.camera_keys
    if not cameras:
        p.error(f"{args.dataset} has no camera feature")
    camera = args.camera or cameras[0]
    if camera not in cameras:
        p.error(f"--camera {camera!r} is not a camera of {args.dataset}; cameras: {cameras}")
    if args.frames:
        bad = [i for i in args.frames if not 0 <= i < len(ds)]
        if bad:
            p.error(f"--frames {bad} outside [0, {len(ds)})")
        indices = list(args.frames)
    else:
        indices = sorted({int(i) for i in np.linspace(0, len(ds) - 1, min(args.rows, len(ds)))})
    frames = [ds[i][camera] for i in indices]
    grid = preview_grid(frames, indices, augment, args.n, args.seed, camera)

    from PIL import Image

    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out)
    print(f"{args.out}: {len(indices)} frames of {camera} (first column) and {args.n} augmented versions each, "
          f"{augment!r}, seed {args.seed}")
    return args.out


if __name__ == "__main__":
    main()
