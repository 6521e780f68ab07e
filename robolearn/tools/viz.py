"""Look at a LeRobotDataset episode: in the rerun viewer, as a saved ``.rrd`` file, or as a static HTML/PNG page.

    python -m robolearn.tools.viz <root or repo_id> --episode 0                 # live viewer (spawns rerun)
    python -m robolearn.tools.viz <root> --episode 0 --save out/ep0.rrd         # headless: write an .rrd
    python -m robolearn.tools.viz <root> --episode 0 --html out/ep0             # static summary page

The rerun recording has two timelines, ``frame_index`` (sequence) and ``timestamp`` (seconds); each camera is
logged as a JPEG-compressed image under its feature key, each vector feature as one scalar series per dimension
under ``<key>/<name>`` (names from ``info.json``, else the dimension index).

The static page (``index.html``) shows the dataset summary, the episode's vector features over time
(``features.png``), the distribution of episode lengths (``episode_lengths.png``) and a strip of frames from each
camera (``frames.png``), for people without rerun.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["log_episode_to_rerun", "write_html_summary", "main"]

_SKIP = ("index", "episode_index", "frame_index", "task_index", "timestamp")


def _open(dataset: str | Path, episode: int):
    from robolearn.datasets import LeRobotDataset

    path = Path(dataset)
    if (path / "meta" / "info.json").is_file():
        return LeRobotDataset(f"local/{path.name}", root=path, episodes=[episode], return_uint8=True)
    return LeRobotDataset(str(dataset), episodes=[episode], return_uint8=True)


def _dim_names(spec: dict, width: int) -> list[str]:
    names = spec.get("names")
    if isinstance(names, dict):  # v2.1-style {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        return names
    return [str(i) for i in range(width)]


def _vector_keys(ds) -> list[str]:
    feats = ds.features
    return [k for k, f in feats.items() if k not in _SKIP and f["dtype"] not in ("video", "image", "string", "language")]


def _episode_arrays(ds) -> dict[str, np.ndarray]:
    """``{key: (T, D) float32}`` for the vector features and ``timestamp (T,)`` of the (single) loaded episode."""
    out = {k: np.asarray(ds._cols[k], dtype=np.float32).reshape(len(ds), -1) for k in _vector_keys(ds)}
    out["timestamp"] = np.asarray(ds._cols["timestamp"], dtype=np.float64)
    return out


def log_episode_to_rerun(ds, save: str | Path | None = None, spawn: bool = True, jpeg_quality: int = 80) -> None:
    """Log every frame of the dataset's loaded episode to rerun.

    Args:
        ds: a :class:`~robolearn.datasets.LeRobotDataset` holding one episode (``return_uint8=True``).
        save: write the recording to this ``.rrd`` file instead of streaming it (headless use).
        spawn: start a viewer when not saving.
        jpeg_quality: JPEG quality of the logged camera frames (1..100).
    """
    import rerun as rr

    app = f"robolearn-{ds.repo_id.replace('/', '-')}-episode_{int(ds.episode_indices[0])}"
    rr.init(app, spawn=spawn and save is None)
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        rr.save(str(save))
    arrays = _episode_arrays(ds)
    names = {k: _dim_names(ds.features[k], arrays[k].shape[1]) for k in arrays if k != "timestamp"}
    for i in range(len(ds)):
        rr.set_time("frame_index", sequence=i)
        rr.set_time("timestamp", duration=float(arrays["timestamp"][i]))
        item = ds[i] if ds.camera_keys else None
        for key in ds.camera_keys:
            hwc = item[key].permute(1, 2, 0).numpy()
            rr.log(key, rr.Image(hwc).compress(jpeg_quality=jpeg_quality))
        for key, dims in names.items():
            for d, name in enumerate(dims):
                rr.log(f"{key}/{name}", rr.Scalars(float(arrays[key][i, d])))
    rr.disconnect()


def write_html_summary(ds, out_dir: str | Path, n_frames: int = 8) -> Path:
    """Write ``index.html`` + ``features.png``, ``episode_lengths.png``, ``frames.png`` into ``out_dir``.

    Args:
        ds: a LeRobotDataset holding one episode (``return_uint8=True``).
        n_frames: frames per camera in the strip, evenly spaced over the episode.
    Returns:
        The path of ``index.html``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ep = int(ds.episode_indices[0])
    arrays = _episode_arrays(ds)
    keys = [k for k in arrays if k != "timestamp"]
    t = arrays["timestamp"]

    fig, axes = plt.subplots(max(len(keys), 1), 1, figsize=(10, 2.6 * max(len(keys), 1)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for d, name in enumerate(_dim_names(ds.features[key], arrays[key].shape[1])):
            ax.plot(t, arrays[key][:, d], label=name, linewidth=1)
        ax.set_title(key)
        ax.set_xlabel("time (s)")
        if arrays[key].shape[1] <= 14:
            ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "features.png", dpi=80)
    plt.close(fig)

    lengths = ds.meta.episodes["length"].to_numpy()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(lengths, bins=min(30, max(len(lengths), 1)))
    ax.axvline(len(ds), color="r", label=f"episode {ep}")
    ax.set_xlabel("episode length (frames)")
    ax.set_ylabel("episodes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "episode_lengths.png", dpi=80)
    plt.close(fig)

    cams = ds.camera_keys
    has_frames = bool(cams)
    if has_frames:
        picks = np.unique(np.linspace(0, len(ds) - 1, num=min(n_frames, len(ds))).astype(int))
        fig, axes = plt.subplots(len(cams), len(picks), figsize=(1.6 * len(picks), 1.8 * len(cams)), squeeze=False)
        for j, i in enumerate(picks):
            item = ds[int(i)]
            for r, key in enumerate(cams):
                axes[r, j].imshow(item[key].permute(1, 2, 0).numpy())
                axes[r, j].set_axis_off()
                axes[r, j].set_title(f"{t[i]:.2f} s", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "frames.png", dpi=80)
        plt.close(fig)

    info = ds.meta.info
    rows = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(str(f['dtype']))}</td>"
        f"<td>{html.escape(str(f.get('shape')))}</td></tr>"
        for k, f in info["features"].items()
    )
    task = html.escape(ds[0]["task"]) if len(ds) else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(ds.repo_id)} episode {ep}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head>
<body>
<h1>{html.escape(ds.repo_id)}: episode {ep}</h1>
<p>{info.get('robot_type')} · {info['fps']} fps · {info['total_episodes']} episodes · {info['total_frames']} frames ·
codebase {html.escape(str(info.get('codebase_version')))}</p>
<p>Episode {ep}: {len(ds)} frames ({len(ds) / info['fps']:.2f} s). Task: {task}</p>
<h2>Features</h2><table><tr><th>key</th><th>dtype</th><th>shape</th></tr>{rows}</table>
<h2>Episode signals</h2><img src="features.png">
{'<h2>Frames</h2><img src="frames.png">' if has_frames else ''}
<h2>Episode lengths</h2><img src="episode_lengths.png">
</body></html>
"""
    (out / "index.html").write_text(page)
    return out / "index.html"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m robolearn.tools.viz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="dataset folder (with meta/info.json) or Hub repo id")
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="write an .rrd file instead of opening a viewer")
    parser.add_argument("--html", type=Path, default=None, help="write a static summary page into this folder")
    parser.add_argument("--no-spawn", action="store_true", help="do not start a viewer (log to a running one)")
    args = parser.parse_args(argv)
    ds = _open(args.dataset, args.episode)
    if args.html is not None:
        print(f"summary: {write_html_summary(ds, args.html)}")
    if args.save is not None or args.html is None:
        log_episode_to_rerun(ds, save=args.save, spawn=not args.no_spawn)
        if args.save is not None:
            print(f"recording: {args.save}")


if __name__ == "__main__":
    main()
