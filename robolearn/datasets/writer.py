"""``LeRobotDatasetWriter``: record episodes into a LeRobotDataset v3.0 folder, byte-compatible with lerobot.

Layout and formats follow lerobot 0.6.1 (see ``docs/architecture.md`` and the v3.0 format notes):

- ``data/chunk-CCC/file-FFF.parquet``: many episodes per file, one row group per episode, snappy,
  ``fixed_size_list<element: ...>[n]`` columns for vectors, and the HF ``huggingface`` schema metadata.
- ``videos/<key>/chunk-CCC/file-FFF.mp4``: each camera's episodes appended by stream copy; an episode's frames
  sit at ``from_timestamp + frame_index / fps`` in the file.
- ``meta/episodes/chunk-CCC/file-FFF.parquet`` (one row per episode, with per-episode stats),
  ``meta/tasks.parquet``, ``meta/stats.json`` and ``meta/info.json`` (``indent=4``, lerobot's key order).

Crash safety: ``save_episode`` first writes every new or changed file under a temporary name in the target
folder (``.<name>.<pid>.<n>.tmp``, which no reader glob matches), then moves them into place with
``os.replace`` in the order tasks → data → videos → episodes → stats → info.json. ``info.json`` is the commit
point. A failure before the moves (encoder error, Ctrl-C, full disk) leaves every file of the previously saved
episodes byte-identical. Each replaced file is a superset of the old one (earlier episodes unchanged), so even a
crash between two moves leaves the saved episodes readable. There is no open ``ParquetWriter`` between
episodes: a data file receiving an episode is rewritten whole (old episodes + new one), which is bounded by
``data_files_size_in_mb``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robolearn.datasets import constants as C
from robolearn.datasets.stats import STAT_KEYS, aggregate_stats, compute_episode_stats, write_stats
from robolearn.datasets.video_encode import (
    DEFAULT_CRF,
    DEFAULT_G,
    DEFAULT_PIX_FMT,
    LIBSVTAV1_DEFAULT_PRESET,
    concatenate_video_files,
    encode_video_frames,
    encoder_settings,
    probe_video_info,
    resolve_vcodec,
)
from robolearn.features import camera_shape_chw

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
_CAMERA_DTYPES = ("video", "image")
_NO_STATS_DTYPES = ("string", "language")


# --------------------------------------------------------------------------------------------------- helpers


def default_root(repo_id: str) -> Path:
    """``$HF_LEROBOT_HOME/<repo_id>`` (default ``~/.cache/huggingface/lerobot/<repo_id>``)."""
    home = os.environ.get("HF_LEROBOT_HOME")
    base = Path(home) if home else Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "lerobot"
    return base / repo_id


def update_chunk_file_indices(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """Next ``(chunk_index, file_index)``: a new chunk after ``chunks_size`` files, else the next file."""
    if file_index == chunks_size - 1:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


class _Staging:
    """Temporary files staged for one ``save_episode``; ``commit`` moves them into place in order.

    With ``fsync`` (the default), ``commit`` first flushes every staged file to the disk, then moves them, then
    flushes the folders that received them, so an episode reported saved survives a power loss, not only a killed
    process (without it the renames can reach the disk before the data they point to).
    """

    def __init__(self, fsync: bool = True) -> None:
        self.moves: list[tuple[Path, Path]] = []
        self.scratch: list[Path] = []
        self.fsync = fsync
        self._n = 0

    def tmp_for(self, final: Path, move: bool = True) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        self._n += 1
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{self._n}.tmp")
        if move:
            self.moves.append((tmp, final))
        else:
            self.scratch.append(tmp)
        return tmp

    def commit(self) -> None:
        if self.fsync:
            for tmp, _ in self.moves:
                _fsync_path(tmp)
        for tmp, final in self.moves:
            os.replace(tmp, final)
        if self.fsync:
            for folder in dict.fromkeys(final.parent for _, final in self.moves):
                _fsync_path(folder)
        self.moves = []

    def cleanup(self) -> None:
        for tmp in [t for t, _ in self.moves] + self.scratch:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        self.moves, self.scratch = [], []


def _fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _arrow_value_type(key: str, dtype: str) -> pa.DataType:
    try:
        return pa.from_numpy_dtype(np.dtype(dtype))
    except TypeError as e:  # pragma: no cover - exotic dtypes
        raise ValueError(f"feature '{key}': unsupported dtype '{dtype}'") from e


def _hf_feature_and_arrow_type(key: str, spec: Mapping[str, Any]) -> tuple[dict[str, Any], pa.DataType]:
    """HF ``datasets`` feature JSON and arrow type of one data-parquet column (as lerobot writes them)."""
    dtype = spec["dtype"]
    shape = tuple(int(s) for s in spec["shape"])
    if dtype == "image":
        return {"_type": "Image"}, pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    if dtype == "string":
        return {"dtype": "string", "_type": "Value"}, pa.string()
    if len(shape) == 1 and shape[0] == 1:
        return {"dtype": dtype, "_type": "Value"}, _arrow_value_type(key, dtype)
    if len(shape) == 1:
        value = {"dtype": dtype, "_type": "Value"}
        typ = pa.list_(pa.field("element", _arrow_value_type(key, dtype)), shape[0])
        return {"feature": value, "length": shape[0], "_type": "List"}, typ
    raise NotImplementedError(
        f"feature '{key}': numeric features with shape {list(shape)} (more than 1-D) are not supported by the "
        "writer; flatten them to 1-D")


def _nested_list_type(depth: int, leaf: pa.DataType) -> pa.DataType:
    t = leaf
    for _ in range(depth):
        t = pa.list_(pa.field("element", t))
    return t


def _png_bytes(img: np.ndarray, compress_level: int = 6) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    arr = img[..., 0] if img.shape[-1] == 1 else img
    Image.fromarray(arr).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor
        return value.detach().cpu().numpy()
    if value.__class__.__module__.startswith("PIL."):
        return np.asarray(value)
    return value



class _StreamEncoder:
    """Encode one camera's frames to an mp4 in a background thread while the episode is being recorded.

    ``put`` only enqueues (the control loop never waits for the encoder unless ``max_queue`` frames are pending);
    ``finish`` flushes the encoder and returns the file; ``cancel`` stops and deletes it. Frame ``i`` gets
    ``pts = i`` in time base ``1/fps`` (the same timestamps as :func:`encode_video_frames`).
    """

    _STOP = object()

    def __init__(self, path: Path, fps: int, vcodec: str, settings: Mapping[str, Any], max_queue: int = 256) -> None:
        self.path = Path(path)
        self.fps, self.vcodec, self.settings = int(fps), vcodec, dict(settings)
        self.error: BaseException | None = None
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name=f"encode-{self.path.name}", daemon=True)
        self._thread.start()

    def put(self, frame: np.ndarray) -> None:
        if self.error is not None:
            raise RuntimeError(f"video encoder for {self.path} failed: {self.error!r}") from self.error
        self._q.put(frame)

    def _run(self) -> None:
        import av

        opts = encoder_settings(self.vcodec, g=self.settings["g"], crf=self.settings["crf"],
                                preset=self.settings["preset"], fast_decode=self.settings["fast_decode"])
        tb = Fraction(1, self.fps)
        try:
            with av.open(str(self.path), mode="w", format="mp4") as out:
                stream, i = None, 0
                while True:
                    img = self._q.get()
                    if img is self._STOP or self._cancelled:
                        break
                    if stream is None:
                        stream = out.add_stream(self.vcodec, rate=Fraction(self.fps, 1), options=opts)
                        stream.pix_fmt = self.settings["pix_fmt"]
                        stream.height, stream.width = int(img.shape[0]), int(img.shape[1])
                        stream.codec_context.time_base = tb
                    vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                    vf.pts, vf.time_base = i, tb
                    i += 1
                    for packet in stream.encode(vf):
                        out.mux(packet)
                if stream is not None and not self._cancelled:
                    for packet in stream.encode(None):
                        out.mux(packet)
        except BaseException as e:  # reported by put()/finish()
            self.error = e
            while True:  # unblock a producer waiting on a full queue
                try:
                    if self._q.get_nowait() is self._STOP:
                        break
                except queue.Empty:
                    break

    def finish(self) -> Path:
        """Flush and close the file; returns its path. Raises the encoder's error, if any."""
        if self.error is None:
            self._q.put(self._STOP)
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"video encoder for {self.path} failed: {self.error!r}") from self.error
        return self.path

    def cancel(self) -> None:
        """Stop encoding and delete the partial file."""
        self._cancelled = True
        if self.error is None:
            try:
                self._q.put_nowait(self._STOP)
            except queue.Full:
                pass
        self._thread.join()
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- writer


class LeRobotDatasetWriter:
    """Record episodes into a new LeRobotDataset v3.0 folder.

    Create with :meth:`create` (a new folder) or :meth:`resume` (append to an existing one); then per episode call
    :meth:`add_frame` for every frame and :meth:`save_episode`. The folder is a complete, readable dataset after
    every saved episode. :meth:`finalize` ends recording (idempotent). As a context manager, ``finalize`` runs on
    exit; an exception drops only the unsaved episode.

    With ``streaming_encoding=True`` each camera's frames are encoded by a background thread *while* the episode
    is recorded (``add_frame`` only enqueues the frame), so ``save_episode`` only flushes the encoder and appends
    the mp4; with False the whole episode is encoded inside ``save_episode``. Both write the same format.
    """

    def __init__(self, root: Path, info: dict[str, Any], repo_id: str, vcodec: str, encoder: dict[str, Any],
                 streaming_encoding: bool = False, fsync: bool = True):
        # Use LeRobotDatasetWriter.create(); this constructor only sets up in-memory state.
        self.root = Path(root)
        self.repo_id = repo_id
        self.info = info
        self.fps = int(info["fps"])
        self.features: dict[str, dict[str, Any]] = info["features"]
        self.video_keys = [k for k, f in self.features.items() if f["dtype"] == "video"]
        self.image_keys = [k for k, f in self.features.items() if f["dtype"] == "image"]
        self.camera_keys = [k for k, f in self.features.items() if f["dtype"] in _CAMERA_DTYPES]
        self.user_keys = [k for k in self.features if k not in C.DEFAULT_FEATURES]
        self.vcodec = vcodec
        self._encoder = encoder
        self._chw = {k: camera_shape_chw(k, self.features[k]) for k in self.camera_keys}
        self._data_schema = self._build_data_schema()
        self._episodes_schema = self._build_episodes_schema()
        self.tasks: dict[str, int] = {}
        self.total_episodes = 0
        self.total_frames = 0
        self._stats: dict[str, dict[str, np.ndarray]] = {}
        # Current data file: (chunk, file), its episodes' tables and frame count.
        self._data_cf = (0, 0)
        self._data_tables: list[pa.Table] = []
        self._data_frames = 0
        # Current video file per camera: (chunk, file) and the end time (s) of its last episode (None: no file).
        self._video_cf = {k: (0, 0) for k in self.video_keys}
        self._video_end: dict[str, Fraction | None] = {k: None for k in self.video_keys}
        # Current episodes-metadata file and its rows.
        self._meta_cf = (0, 0)
        self._meta_rows: list[dict[str, Any]] = []
        self._finalized = False
        self.streaming_encoding = bool(streaming_encoding)
        self.fsync = bool(fsync)
        # seconds the last save_episode spent moving its files into place (and flushing them, with fsync)
        self.last_commit_s: float | None = None
        self._streams: dict[str, _StreamEncoder] = {}
        self._stream_n = 0
        self.episode_buffer = self._new_buffer()

    # ------------------------------------------------------------------------------------------------ create

    @classmethod
    def create(cls, repo_id: str, fps: int, features: Mapping[str, Mapping[str, Any]],
               root: str | os.PathLike | None = None, robot_type: str | None = None, use_videos: bool = True,
               vcodec: str = "auto", data_files_size_in_mb: int = C.DEFAULT_DATA_FILE_SIZE_IN_MB,
               video_files_size_in_mb: int = C.DEFAULT_VIDEO_FILE_SIZE_IN_MB,
               chunks_size: int = C.DEFAULT_CHUNK_SIZE, crf: int | None = DEFAULT_CRF, g: int | None = DEFAULT_G,
               preset: int | str | None = None, pix_fmt: str = DEFAULT_PIX_FMT,
               streaming_encoding: bool = False, fsync: bool = True) -> "LeRobotDatasetWriter":
        """Create an empty dataset folder (with ``meta/info.json``) and return its writer.

        Args:
            repo_id: ``"<user>/<name>"``; only recorded, nothing is uploaded.
            fps: frames per second (int > 0); frame ``i`` of an episode has ``timestamp = i / fps`` s.
            features: lerobot feature dicts ``{key: {"dtype", "shape", "names"}}`` without the 5 default
                columns (``timestamp, frame_index, episode_index, index, task_index``), which are added.
                Cameras: dtype ``"video"`` (mp4) or ``"image"`` (PNG in the parquet), shape ``[H, W, C]``.
                Other features: numpy dtypes with shape ``[1]`` (scalar) or ``[D]``, or dtype ``"string"``.
            root: dataset folder; must not exist. Default ``$HF_LEROBOT_HOME/<repo_id>``.
            robot_type: free text recorded in info.json.
            use_videos: must be True when a feature has dtype ``"video"``.
            vcodec: ``"auto"`` (libsvtav1 if PyAV has it, else libx264), ``"libsvtav1"``, ``"libx264"``, ...
            data_files_size_in_mb: roll-over size (MB = 2**20 bytes) of data and episodes-metadata parquet files.
            video_files_size_in_mb: roll-over size (MB) of each camera's mp4 files.
            chunks_size: max files per ``chunk-CCC`` folder.
            crf, g, preset, pix_fmt: video encoder settings (lerobot defaults: 30, 2, 12 for svtav1, yuv420p).
            streaming_encoding: encode camera frames in background threads during recording (see the class doc).
            fsync: flush each saved episode's files and folders to the disk before ``save_episode`` returns, so a
                power loss cannot lose an episode reported saved (``benchmarks/record.py`` measures the cost).

        Raises:
            FileExistsError: ``root`` exists.
            ValueError: a default or ``/``-containing feature name, a malformed feature, ``fps <= 0``, video
                features with ``use_videos=False``, or an unavailable ``vcodec``.
            NotImplementedError: a numeric feature with more than one dimension.
        """
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive int, got {fps!r}")
        for name, v in (("data_files_size_in_mb", data_files_size_in_mb),
                        ("video_files_size_in_mb", video_files_size_in_mb), ("chunks_size", chunks_size)):
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        feats: dict[str, dict[str, Any]] = {}
        for key, spec in features.items():
            if key in C.DEFAULT_FEATURES:
                raise ValueError(f"feature '{key}' is a default feature added by the writer; do not pass it")
            if "/" in key:
                raise ValueError(f"feature name '{key}' must not contain '/'")
            if key == "task":
                raise ValueError("'task' is not a feature; pass it in each frame dict")
            if not isinstance(spec, Mapping) or "dtype" not in spec or "shape" not in spec:
                raise ValueError(f"feature '{key}' needs 'dtype' and 'shape', got {spec!r}")
            d = {"dtype": spec["dtype"], "shape": [int(s) for s in spec["shape"]], "names": spec.get("names")}
            for extra in spec:
                if extra not in d:
                    d[extra] = spec[extra]
            if d["dtype"] == "video" and not use_videos:
                raise ValueError(f"feature '{key}' has dtype 'video' but use_videos=False")
            if d["dtype"] in _CAMERA_DTYPES:
                camera_shape_chw(key, d)  # validates the shape
            elif d["dtype"] not in _NO_STATS_DTYPES:
                np.dtype(d["dtype"])  # raises TypeError on nonsense
            feats[key] = d
        for key, spec in C.DEFAULT_FEATURES.items():
            feats[key] = {"dtype": spec["dtype"], "shape": list(spec["shape"]), "names": spec["names"]}
        has_video = any(f["dtype"] == "video" for f in feats.values())
        resolved = resolve_vcodec(vcodec) if has_video else (vcodec if vcodec != "auto" else "libsvtav1")
        if resolved == "libsvtav1" and preset is None:
            preset = LIBSVTAV1_DEFAULT_PRESET
        encoder = {"g": g, "crf": crf, "preset": preset, "pix_fmt": pix_fmt, "fast_decode": 0}

        root = Path(root) if root is not None else default_root(repo_id)
        if root.exists():
            raise FileExistsError(f"dataset root {root} already exists; the writer only creates new datasets")
        info = {
            "codebase_version": C.CODEBASE_VERSION,
            "fps": int(fps),
            "features": feats,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": int(chunks_size),
            "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": video_files_size_in_mb,
            "data_path": C.DEFAULT_DATA_PATH,
            "video_path": C.DEFAULT_VIDEO_PATH if use_videos else None,
            "robot_type": robot_type,
            "splits": {},
        }
        writer = cls(root, info, repo_id, resolved, encoder, streaming_encoding, fsync)  # validates schemas first
        (root / "meta").mkdir(parents=True)
        writer._write_json_atomic(root / C.INFO_PATH, info)
        return writer

    # ------------------------------------------------------------------------------------------------ resume

    @classmethod
    def resume(cls, root: str | os.PathLike, repo_id: str | None = None, vcodec: str | None = None,
               streaming_encoding: bool = False, repair: bool = False, fsync: bool = True) -> "LeRobotDatasetWriter":
        """Reopen an existing LeRobotDataset v3.0 folder to append episodes after its last saved one.

        The new episodes continue ``episode_index``/``index``, go into the last data / video / episodes-metadata
        files (rolling over by size as in :meth:`create`) and update ``stats.json`` and ``info.json`` with the same
        crash-safe staging. Check ``writer.fps`` / ``writer.features`` against what you are about to record.

        Args:
            root: the dataset folder (with ``meta/info.json``).
            repo_id: recorded in the parquet metadata; default ``"local/<folder name>"``.
            vcodec: encoder for new episodes; default: the codec of the existing videos (``av1`` → libsvtav1,
                ``h264`` → libx264), else ``"auto"``. Appended mp4s are stream-copied, so it must match them.
            streaming_encoding, fsync: see :meth:`create`.
            repair: first truncate an interrupted write back to the last committed episode
                (:func:`robolearn.datasets.repair.repair_dataset`); with False such a dataset raises.

        Raises:
            FileNotFoundError: no ``meta/info.json`` under ``root``.
            ValueError: another ``codebase_version`` than v3.0.
            RuntimeError: the folder holds an interrupted write and ``repair`` is False (names the problems and
                the ``python -m robolearn.datasets.repair`` command).
        """
        from robolearn.datasets.repair import check_dataset, repair_dataset
        from robolearn.datasets.stats import stats_from_json

        root = Path(root)
        info_path = root / C.INFO_PATH
        if not info_path.is_file():
            raise FileNotFoundError(f"cannot resume: {info_path} does not exist (not a LeRobotDataset folder)")
        problems = check_dataset(root)
        if problems:
            if not repair:
                raise RuntimeError(f"cannot resume {root}: it holds an interrupted write ({'; '.join(problems)}). "
                                   f"Run `python -m robolearn.datasets.repair {root}` first")
            for line in repair_dataset(root):
                logger.warning("repair: %s", line)
        info = json.loads(info_path.read_text())
        if info.get("codebase_version") != C.CODEBASE_VERSION:
            raise ValueError(f"{info_path}: codebase_version {info.get('codebase_version')!r}, the writer appends "
                             f"to {C.CODEBASE_VERSION} only")
        feats = info["features"]
        video_keys = [k for k, f in feats.items() if f["dtype"] == "video"]
        vinfo = next((feats[k].get("info") for k in video_keys if feats[k].get("info")), None) or {}
        if vcodec is None:
            codec = vinfo.get("video.codec")
            vcodec = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}.get(codec, codec or "auto")
        resolved = resolve_vcodec(vcodec) if video_keys else (vcodec if vcodec != "auto" else "libsvtav1")
        preset = vinfo.get("video.preset", LIBSVTAV1_DEFAULT_PRESET if resolved == "libsvtav1" else None)
        encoder = {"g": vinfo.get("video.g", DEFAULT_G), "crf": vinfo.get("video.crf", DEFAULT_CRF), "preset": preset,
                   "pix_fmt": vinfo.get("video.pix_fmt", DEFAULT_PIX_FMT),
                   "fast_decode": vinfo.get("video.fast_decode", 0) or 0}
        w = cls(root, info, repo_id or f"local/{root.name}", resolved, encoder, streaming_encoding, fsync)
        w.total_episodes, w.total_frames = int(info["total_episodes"]), int(info["total_frames"])
        if w.total_episodes == 0:
            return w
        tasks = pq.read_table(root / C.TASKS_PATH).to_pydict()
        w.tasks = {t: int(i) for t, i in sorted(zip(tasks["task"], tasks["task_index"]), key=lambda x: x[1])}
        stats_path = root / C.STATS_PATH
        w._stats = stats_from_json(json.loads(stats_path.read_text())) if stats_path.is_file() else {}
        ep_files = sorted((root / C.EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        all_rows = [r for f in ep_files for r in pq.read_table(f).to_pylist()]
        last = max(all_rows, key=lambda r: r["episode_index"])
        w._meta_cf = (int(last["meta/episodes/chunk_index"]), int(last["meta/episodes/file_index"]))
        meta_file = w._path(C.DEFAULT_EPISODES_PATH, chunk_index=w._meta_cf[0], file_index=w._meta_cf[1])
        w._meta_rows = pq.read_table(meta_file).to_pylist()
        w._data_cf = (int(last["data/chunk_index"]), int(last["data/file_index"]))
        data_file = w._path(info["data_path"], chunk_index=w._data_cf[0], file_index=w._data_cf[1])
        table = pq.read_table(data_file).select(w._data_schema.names)
        w._data_tables = [table.replace_schema_metadata(None).cast(w._data_schema)]
        w._data_frames = table.num_rows
        for key in video_keys:
            cf = (int(last[f"videos/{key}/chunk_index"]), int(last[f"videos/{key}/file_index"]))
            w._video_cf[key] = cf
            w._video_end[key] = Fraction(float(last[f"videos/{key}/to_timestamp"])).limit_denominator(10**6)
        return w

    # ----------------------------------------------------------------------------------------------- schemas

    def _build_data_schema(self) -> pa.Schema:
        fields, hf = [], {}
        for key, spec in self.features.items():
            if spec["dtype"] == "video":
                continue
            hf_feat, typ = _hf_feature_and_arrow_type(key, spec)
            hf[key] = hf_feat
            fields.append(pa.field(key, typ))
        self._hf_features = hf
        return pa.schema(fields)

    def _data_schema_metadata(self) -> dict[bytes, bytes]:
        # The shape of HF ``datasets``' own metadata: features plus a 16-hex fingerprint (here a content hash).
        import hashlib

        feats = json.dumps({"info": {"features": self._hf_features}})
        fp = hashlib.sha256(f"{self.repo_id}|{feats}|{self.total_episodes}".encode()).hexdigest()[:16]
        meta = {"info": {"features": self._hf_features}, "fingerprint": fp}
        return {b"huggingface": json.dumps(meta).encode()}

    def _stats_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] not in _NO_STATS_DTYPES]

    def _build_episodes_schema(self) -> pa.Schema:
        i64, f64 = pa.int64(), pa.float64()
        fields = [
            pa.field("episode_index", i64),
            pa.field("tasks", pa.list_(pa.field("element", pa.string()))),
            pa.field("length", i64),
            pa.field("data/chunk_index", i64),
            pa.field("data/file_index", i64),
            pa.field("dataset_from_index", i64),
            pa.field("dataset_to_index", i64),
        ]
        for key in self.video_keys:
            fields += [pa.field(f"videos/{key}/chunk_index", i64), pa.field(f"videos/{key}/file_index", i64),
                       pa.field(f"videos/{key}/from_timestamp", f64), pa.field(f"videos/{key}/to_timestamp", f64)]
        for key in self._stats_keys():
            depth = 3 if self.features[key]["dtype"] in _CAMERA_DTYPES else 1
            for stat in STAT_KEYS:
                typ = _nested_list_type(1, i64) if stat == "count" else _nested_list_type(depth, f64)
                fields.append(pa.field(f"stats/{key}/{stat}", typ))
        fields += [pa.field("meta/episodes/chunk_index", i64), pa.field("meta/episodes/file_index", i64)]
        return pa.schema(fields)

    # ------------------------------------------------------------------------------------------- recording

    def _new_buffer(self) -> dict[str, list]:
        return {**{k: [] for k in self.user_keys}, "task": []}

    @property
    def num_buffered_frames(self) -> int:
        """Frames added since the last save/clear."""
        return len(self.episode_buffer["task"])

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Append one frame to the current episode buffer.

        Args:
            frame: every user feature plus ``"task"`` (str). Numeric features: numpy arrays (or torch tensors)
                of exactly the feature's dtype and shape (scalars of shape ``(1,)`` may be Python numbers or
                0-d arrays). Cameras: ``(H, W, C)`` or ``(C, H, W)`` arrays (or PIL images / tensors), uint8 in
                [0, 255] or float in [0, 1]. String features: ``str``.

        Raises:
            RuntimeError: the writer is finalized.
            ValueError: missing/extra keys, a default key, a non-string task, or a value of the wrong
                dtype/shape/range; the message names the key, what was expected and what was got.
        """
        if self._finalized:
            raise RuntimeError("add_frame() after finalize()")
        given = set(frame)
        defaults = given & set(C.DEFAULT_FEATURES)
        if defaults:
            raise ValueError(f"frame must not contain the default features {sorted(defaults)}; the writer fills them")
        missing = [k for k in [*self.user_keys, "task"] if k not in given]
        extra = sorted(given - set(self.user_keys) - {"task"})
        if missing or extra:
            raise ValueError(f"frame keys do not match the features: missing {missing}, unexpected {extra}")
        task = frame["task"]
        if not isinstance(task, str) or not task:
            raise ValueError(f"feature 'task': expected a non-empty str, got {type(task).__name__} {task!r}")
        converted = {key: self._validate_value(key, self.features[key], frame[key]) for key in self.user_keys}
        if self.streaming_encoding:
            for key in self.video_keys:
                self._stream_for(key).put(converted[key])
        for key, v in converted.items():
            self.episode_buffer[key].append(v)
        self.episode_buffer["task"].append(task)

    def _stream_for(self, key: str) -> _StreamEncoder:
        enc = self._streams.get(key)
        if enc is None:
            cf = self._video_cf[key]
            cur = self._path(self.info["video_path"], video_key=key, chunk_index=cf[0], file_index=cf[1])
            cur.parent.mkdir(parents=True, exist_ok=True)
            self._stream_n += 1
            tmp = cur.with_name(f".episode-stream.{os.getpid()}.{self._stream_n}.mp4.tmp")
            enc = self._streams[key] = _StreamEncoder(tmp, self.fps, self.vcodec, self._encoder)
        return enc

    def _cancel_streams(self) -> None:
        streams, self._streams = self._streams, {}
        for enc in streams.values():
            enc.cancel()

    def _validate_value(self, key: str, spec: Mapping[str, Any], value: Any) -> Any:
        dtype = spec["dtype"]
        value = _to_numpy(value)
        if dtype == "string":
            if not isinstance(value, str):
                raise ValueError(f"feature '{key}': expected str, got {type(value).__name__}")
            return value
        if dtype in _CAMERA_DTYPES:
            return self._validate_image(key, value)
        shape = tuple(int(s) for s in spec["shape"])
        expected = np.dtype(dtype)
        if isinstance(value, (bool, int, float, np.bool_)) and not isinstance(value, np.ndarray) and shape == (1,):
            if expected.kind == "b" and not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"feature '{key}': expected dtype bool, got {type(value).__name__} {value!r}")
            if isinstance(value, float) and expected.kind in "biu":
                raise ValueError(f"feature '{key}': expected dtype {expected}, got Python float {value!r}")
            return np.asarray([value], dtype=expected)
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise ValueError(f"feature '{key}': expected a numpy array of dtype {expected} and shape {list(shape)}, "
                             f"got {type(value).__name__}")
        if value.dtype != expected:
            raise ValueError(f"feature '{key}': expected dtype {expected}, got {value.dtype}")
        if value.shape != shape and not (shape == (1,) and value.shape == ()):
            raise ValueError(f"feature '{key}': expected shape {list(shape)}, got {list(value.shape)}")
        return value.reshape(shape).copy()

    def _validate_image(self, key: str, img: Any) -> np.ndarray:
        c, h, w = self._chw[key]
        if not isinstance(img, np.ndarray):
            raise ValueError(f"feature '{key}': expected an image array (H, W, C)=({h}, {w}, {c}) or "
                             f"(C, H, W), got {type(img).__name__}")
        if img.ndim == 2 and c == 1:
            img = img[..., None]
        if img.shape == (h, w, c):
            hwc = img
        elif img.shape == (c, h, w):
            hwc = np.transpose(img, (1, 2, 0))
        else:
            raise ValueError(f"feature '{key}': expected shape (H, W, C)=({h}, {w}, {c}) or (C, H, W)=({c}, {h}, {w}), "
                             f"got {tuple(img.shape)}")
        if hwc.dtype == np.uint8:
            return np.ascontiguousarray(hwc)
        if np.issubdtype(hwc.dtype, np.floating):
            lo, hi = float(np.min(hwc)), float(np.max(hwc))
            if lo < 0.0 or hi > 1.0 or not np.isfinite(lo + hi):
                raise ValueError(f"feature '{key}': expected float values in [0, 1], got range [{lo}, {hi}]")
            return np.round(hwc * 255.0).astype(np.uint8)
        raise ValueError(f"feature '{key}': expected dtype uint8 or float in [0, 1], got {hwc.dtype}")

    def clear_episode_buffer(self) -> None:
        """Discard the frames added since the last saved episode (and stop their background encoders)."""
        self._cancel_streams()
        self.episode_buffer = self._new_buffer()

    # ------------------------------------------------------------------------------------------------- save

    def _path(self, template: str, **kw: Any) -> Path:
        return self.root / template.format(**kw)

    def _write_json_atomic(self, path: Path, obj: Any, staging: _Staging | None = None) -> None:
        st = staging or _Staging(self.fsync)
        tmp = st.tmp_for(path)
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=4)
        if staging is None:
            st.commit()

    def _write_tasks(self, tasks: Mapping[str, int], tmp: Path) -> None:
        names = sorted(tasks, key=lambda t: tasks[t])
        table = pa.table({"task_index": pa.array([tasks[t] for t in names], pa.int64()),
                          "task": pa.array(names, pa.string())})
        pandas_meta = {
            "index_columns": ["task"],
            "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                "metadata": {"encoding": "UTF-8"}}],
            "columns": [
                {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                 "metadata": None},
                {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                 "metadata": None},
            ],
            "attributes": {},
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.3.3",
        }
        table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
        pq.write_table(table, tmp, compression="snappy")

    def _episode_table(self, cols: Mapping[str, np.ndarray]) -> pa.Table:
        arrays = []
        for field in self._data_schema:
            key, typ = field.name, field.type
            v = cols[key]
            if pa.types.is_fixed_size_list(typ):
                flat = pa.array(np.ascontiguousarray(v).reshape(-1), type=typ.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, type=typ))
            elif pa.types.is_struct(typ):  # image feature: embedded PNG
                arrays.append(pa.array([{"bytes": _png_bytes(img), "path": None} for img in v], type=typ))
            elif pa.types.is_string(typ):
                arrays.append(pa.array(list(v), type=typ))
            else:
                arrays.append(pa.array(np.asarray(v).reshape(-1), type=typ))
        return pa.Table.from_arrays(arrays, schema=self._data_schema)

    def save_episode(self) -> int:
        """Write the buffered episode to disk and clear the buffer.

        Assigns ``episode_index`` (= number of saved episodes), global ``index``, ``timestamp = frame_index/fps``
        and ``task_index`` (new tasks are appended to tasks.parquet), computes the episode's stats, writes its
        rows to the current data file (rolling over by size), encodes each camera's frames and appends them to
        the camera's current mp4 (rolling over by size), and rewrites the episodes table, stats.json and
        info.json. All files are staged under temporary names first (see the module docstring).

        Returns:
            The saved episode's index.

        Raises:
            RuntimeError: the writer is finalized.
            ValueError: the buffer is empty.
            Any error from encoding or I/O; the dataset on disk is then unchanged and the buffer is kept
            (call :meth:`clear_episode_buffer` to drop it, or retry).
        """
        if self._finalized:
            raise RuntimeError("save_episode() after finalize()")
        length = self.num_buffered_frames
        if length == 0:
            raise ValueError("save_episode(): the episode buffer is empty; call add_frame() first")
        buf = self.episode_buffer
        ep_idx = self.total_episodes
        start = self.total_frames

        # Tasks (first-seen order).
        tasks = dict(self.tasks)
        for t in buf["task"]:
            if t not in tasks:
                tasks[t] = len(tasks)
        new_tasks = len(tasks) != len(self.tasks)

        cols: dict[str, Any] = {}
        for key in self.user_keys:
            dtype = self.features[key]["dtype"]
            cols[key] = buf[key] if dtype in ("string",) else np.stack(buf[key])
        frame_index = np.arange(length, dtype=np.int64)
        cols["timestamp"] = np.array([i / self.fps for i in range(length)], dtype=np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(length, ep_idx, dtype=np.int64)
        cols["index"] = np.arange(start, start + length, dtype=np.int64)
        cols["task_index"] = np.array([tasks[t] for t in buf["task"]], dtype=np.int64)

        ep_stats = compute_episode_stats(cols, self.features)
        staging = _Staging(self.fsync)
        try:
            # ---- tasks
            if new_tasks:
                self._write_tasks(tasks, staging.tmp_for(self.root / C.TASKS_PATH))

            # ---- data parquet (rewrite the current file with the new episode, or roll over)
            table = self._episode_table(cols)
            data_cf, data_tables, data_frames = self._data_cf, list(self._data_tables), self._data_frames
            if data_frames > 0:
                cur = self._path(self.info["data_path"], chunk_index=data_cf[0], file_index=data_cf[1])
                cur_mb = cur.stat().st_size / _MB
                if cur_mb + cur_mb / data_frames * length >= self.info["data_files_size_in_mb"]:
                    data_cf = update_chunk_file_indices(*data_cf, self.info["chunks_size"])
                    data_tables, data_frames = [], 0
            data_tables.append(table)
            data_frames += length
            data_final = self._path(self.info["data_path"], chunk_index=data_cf[0], file_index=data_cf[1])
            schema = self._data_schema.with_metadata(self._data_schema_metadata())
            with pq.ParquetWriter(staging.tmp_for(data_final), schema, compression="snappy") as pw:
                for t in data_tables:
                    pw.write_table(t.replace_schema_metadata(schema.metadata))

            # ---- videos
            video_cols: dict[str, Any] = {}
            video_cf, video_end = dict(self._video_cf), dict(self._video_end)
            features = self.features
            for key in self.video_keys:
                cf = video_cf[key]
                cur = self._path(self.info["video_path"], video_key=key, chunk_index=cf[0], file_index=cf[1])
                if key in self._streams:  # encoded during recording: flush it (a failed save re-encodes from the buffer)
                    ep_tmp = self._streams.pop(key).finish()
                    staging.scratch.append(ep_tmp)
                else:
                    ep_tmp = staging.tmp_for(cur.with_name("episode.mp4"), move=False)
                    encode_video_frames(cols[key], ep_tmp, self.fps, vcodec=self.vcodec,
                                        pix_fmt=self._encoder["pix_fmt"], g=self._encoder["g"],
                                        crf=self._encoder["crf"], preset=self._encoder["preset"],
                                        fast_decode=self._encoder["fast_decode"])
                duration = Fraction(length, self.fps)
                if video_end[key] is not None and (cur.stat().st_size + ep_tmp.stat().st_size) / _MB \
                        >= self.info["video_files_size_in_mb"]:
                    cf = update_chunk_file_indices(*cf, self.info["chunks_size"])
                    video_end[key] = None
                    cur = self._path(self.info["video_path"], video_key=key, chunk_index=cf[0], file_index=cf[1])
                if video_end[key] is None:  # episode starts a new file
                    from_ts = Fraction(0)
                    staging.moves.append((ep_tmp, cur))
                    staging.scratch.remove(ep_tmp)
                    cur.parent.mkdir(parents=True, exist_ok=True)
                else:
                    from_ts = video_end[key]
                    cat_tmp = staging.tmp_for(cur)
                    concatenate_video_files([cur, ep_tmp], cat_tmp)
                video_cf[key], video_end[key] = cf, from_ts + duration
                video_cols[key] = (cf, float(from_ts), float(from_ts + duration))
                if "info" not in features[key]:
                    if features is self.features:
                        features = json.loads(json.dumps(self.features))
                    extra = {"video.g": self._encoder["g"], "video.crf": self._encoder["crf"],
                             "video.preset": self._encoder["preset"], "video.fast_decode": self._encoder["fast_decode"],
                             "video.video_backend": "pyav", "video.extra_options": {}}
                    features[key]["info"] = probe_video_info(ep_tmp, extra)

            # ---- episodes metadata row
            meta_cf, meta_rows = self._meta_cf, list(self._meta_rows)
            if meta_rows:
                cur = self._path(C.DEFAULT_EPISODES_PATH, chunk_index=meta_cf[0], file_index=meta_cf[1])
                if cur.stat().st_size / _MB >= self.info["data_files_size_in_mb"]:
                    meta_cf = update_chunk_file_indices(*meta_cf, self.info["chunks_size"])
                    meta_rows = []
            row: dict[str, Any] = {
                "episode_index": ep_idx,
                "tasks": sorted(set(buf["task"]), key=lambda t: tasks[t]),
                "length": length,
                "data/chunk_index": data_cf[0],
                "data/file_index": data_cf[1],
                "dataset_from_index": start,
                "dataset_to_index": start + length,
            }
            for key in self.video_keys:
                cf, f_ts, t_ts = video_cols[key]
                row[f"videos/{key}/chunk_index"] = cf[0]
                row[f"videos/{key}/file_index"] = cf[1]
                row[f"videos/{key}/from_timestamp"] = f_ts
                row[f"videos/{key}/to_timestamp"] = t_ts
            for key in self._stats_keys():
                for stat in STAT_KEYS:
                    row[f"stats/{key}/{stat}"] = np.asarray(ep_stats[key][stat]).tolist()
            row["meta/episodes/chunk_index"] = meta_cf[0]
            row["meta/episodes/file_index"] = meta_cf[1]
            meta_rows.append(row)
            meta_final = self._path(C.DEFAULT_EPISODES_PATH, chunk_index=meta_cf[0], file_index=meta_cf[1])
            pq.write_table(pa.Table.from_pylist(meta_rows, schema=self._episodes_schema), staging.tmp_for(meta_final),
                           compression="snappy")

            # ---- stats.json and info.json (commit point, moved last)
            stats = aggregate_stats([self._stats, ep_stats]) if self._stats else ep_stats
            stats_tmp = staging.tmp_for(self.root / C.STATS_PATH)
            write_stats(stats, stats_tmp)
            info = dict(self.info)
            info["features"] = features
            info["total_episodes"] = ep_idx + 1
            info["total_frames"] = start + length
            info["total_tasks"] = len(tasks)
            info["splits"] = {"train": f"0:{ep_idx + 1}"}
            self._write_json_atomic(self.root / C.INFO_PATH, info, staging)

            commit_start = time.perf_counter()
            staging.commit()
            self.last_commit_s = time.perf_counter() - commit_start
        finally:
            staging.cleanup()

        # Committed: update the in-memory state.
        self.info, self.features, self.tasks = info, features, tasks
        self.total_episodes, self.total_frames = ep_idx + 1, start + length
        self._stats = stats
        self._data_cf, self._data_tables, self._data_frames = data_cf, data_tables, data_frames
        self._video_cf, self._video_end = video_cf, video_end
        self._meta_cf, self._meta_rows = meta_cf, meta_rows
        self._streams = {}  # their files were moved into place or deleted with the staging
        self.clear_episode_buffer()
        return ep_idx

    # --------------------------------------------------------------------------------------------- finish

    def finalize(self) -> None:
        """End recording. Files are already complete after each ``save_episode``; this only drops an unsaved
        partial episode (with a warning) and refuses further frames. Idempotent."""
        if self._finalized:
            return
        if self.num_buffered_frames:
            logger.warning("finalize(): dropping %d unsaved frames of a partial episode", self.num_buffered_frames)
            self.clear_episode_buffer()
        self._data_tables = []
        self._finalized = True

    @property
    def finalized(self) -> bool:
        """Whether :meth:`finalize` has run."""
        return self._finalized

    def __enter__(self) -> "LeRobotDatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.clear_episode_buffer()  # drop the unsaved partial episode; saved ones are untouched
        self.finalize()
        return False

    def __repr__(self) -> str:
        return (f"LeRobotDatasetWriter(repo_id={self.repo_id!r}, root='{self.root}', episodes={self.total_episodes}, "
                f"frames={self.total_frames}, buffered={self.num_buffered_frames})")
