"""Replay buffers saved beside Lightning checkpoints and restored on resume (HIL-SERL / online RL learners).

A checkpoint of an online-RL run is only resumable as the same experiment if the transitions it learned from come
back with it. The buffers are not put inside the ``.ckpt`` (a pickle archive, and a multi-GB one with cameras):
:func:`save_buffers` writes a **sidecar folder** ``<checkpoint dir>/replay_buffers/step_<N>/`` holding one
safetensors file per buffer (``online.safetensors``, ``offline.safetensors``: tensors only, never unpickled on
load) and ``meta.json`` (sizes, ring positions, keys; JSON). The checkpoint itself only records the folder's name
and the buffer sizes (:class:`~robolearn.rl.datamodule.OnlineRLDataModule` ``state_dict``).

Crash safety: the folder is written under a temporary name, every file is flushed to disk (``fsync``), and only
then renamed to ``step_<N>`` (an atomic rename on POSIX file systems). Lightning writes the ``.ckpt`` after the
DataModule's ``state_dict`` returned, so a kill at any moment leaves either a complete sidecar or none (a
``.tmp-*`` folder, ignored and removed at the next save), and never a checkpoint that names a half-written one.
A checkpoint whose sidecar is missing or does not match the sizes it recorded resumes with empty buffers and a
warning (the weights, optimizers and counters are still restored).

Disk cost per saved checkpoint: the filled part of each buffer, :func:`buffer_nbytes` bytes (cameras as uint8;
``next.observation.*`` twice the observation bytes unless ``optimize_memory``). Only the newest ``keep`` sidecars
are kept, so older ``step_*.ckpt`` files resume without buffers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import load_file, save_file

from robolearn.rl.replay import ReplayBuffer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SIDECAR_DIR = "replay_buffers"
_GENERATOR = "__generator_state__"
_PENDING = "__pending_next__."


def buffer_nbytes(buffer: ReplayBuffer) -> int:
    """Bytes :func:`save_buffers` writes for ``buffer``: its filled slots of every stored key (no file overhead)."""
    return sum(t[: buffer.size].numel() * t.element_size() for t in buffer._storage.values())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some file systems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _buffer_tensors(buffer: ReplayBuffer) -> dict[str, torch.Tensor]:
    out = {k: t[: buffer.size].detach().to("cpu").contiguous() for k, t in buffer._storage.items()}
    out[_GENERATOR] = buffer.generator.get_state()
    if buffer._pending_next is not None:
        out.update({_PENDING + k: v.detach().to("cpu").contiguous() for k, v in buffer._pending_next.items()})
    return out


def _buffer_meta(buffer: ReplayBuffer) -> dict:
    return {"size": int(buffer.size), "pos": int(buffer.pos), "capacity": int(buffer.capacity),
            "obs_keys": list(buffer.obs_keys), "info_keys": list(buffer.info_keys),
            "optimize_memory": bool(buffer.optimize_memory)}


def save_buffers(directory: str | Path, name: str, buffers: Mapping[str, ReplayBuffer | None], keep: int = 2) -> Path:
    """Write ``buffers`` (``{"online": buffer, "offline": buffer or None}``) to ``directory/name/`` atomically
    (see the module doc), then delete all but the newest ``keep`` sidecars in ``directory`` (by modification time).

    Args:
        directory: the sidecar root (``<checkpoint dir>/replay_buffers``); created when missing.
        name: the folder name, e.g. ``step_000120``; an existing folder of that name is replaced.
        buffers: buffers to save; None or empty ones are recorded in ``meta.json`` with size 0 and no file.
        keep: sidecars kept after this save (>= 1).

    Returns:
        The written folder.

    Raises:
        ValueError: ``keep < 1`` or a name with a path separator.
        OSError: the disk is full or not writable (the temporary folder is removed; no sidecar is left half-written).
    """
    if int(keep) < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"sidecar name must be a plain folder name, got {name!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = directory / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    try:
        meta = {"format_version": FORMAT_VERSION, "buffers": {}}
        for key, buffer in buffers.items():
            if buffer is None or len(buffer) == 0:
                meta["buffers"][key] = {"size": 0}
                continue
            path = tmp / f"{key}.safetensors"
            save_file(_buffer_tensors(buffer), str(path), metadata={"format_version": str(FORMAT_VERSION)})
            meta["buffers"][key] = {**_buffer_meta(buffer), "file": path.name, "bytes": path.stat().st_size}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        for path in tmp.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        old = None
        if final.exists():
            old = directory / f".{name}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_dir(directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(directory, int(keep), final)
    return final


def _prune(directory: Path, keep: int, newest: Path) -> None:
    done = sorted((p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".") and p != newest),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for path in done[keep - 1:]:
        shutil.rmtree(path, ignore_errors=True)
    for path in directory.iterdir():  # leftovers of a save killed midway (not this process's: it finished)
        if path.name.startswith(".") and (".tmp-" in path.name or ".old-" in path.name) \
                and f"-{os.getpid()}-" not in path.name:
            shutil.rmtree(path, ignore_errors=True)


def read_meta(folder: str | Path) -> dict:
    """The ``meta.json`` of a sidecar folder.

    Raises:
        FileNotFoundError: no such folder or no ``meta.json`` in it. ValueError: an unknown format version.
    """
    meta = json.loads((Path(folder) / "meta.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder}: replay-buffer format {meta.get('format_version')}, expected {FORMAT_VERSION}")
    return meta


def load_buffer(buffer: ReplayBuffer, folder: str | Path, key: str) -> int:
    """Fill the empty ``buffer`` with the transitions saved as ``key`` in the sidecar ``folder``.

    The newest ``min(saved size, buffer.capacity)`` transitions are kept in their order (a capacity change between
    runs is allowed); the sampling generator state comes back too, so sampling continues as before the restart
    when the capacity is unchanged. Tensors go to ``buffer.device``.

    Returns:
        Transitions loaded (0 when ``key`` was saved empty).

    Raises:
        FileNotFoundError: the folder or its files are missing. ValueError: ``buffer`` is not empty, or was built
            with another ``optimize_memory`` setting than the saved one.
    """
    if len(buffer):
        raise ValueError(f"load_buffer needs an empty buffer, this one holds {len(buffer)} transitions")
    meta = read_meta(folder)["buffers"].get(key)
    if meta is None:
        raise FileNotFoundError(f"{folder}: no buffer '{key}' saved (has {sorted(read_meta(folder)['buffers'])})")
    size = int(meta["size"])
    if size == 0:
        return 0
    if bool(meta["optimize_memory"]) != buffer.optimize_memory:
        raise ValueError(f"{folder}: buffer '{key}' was saved with optimize_memory={meta['optimize_memory']}, this "
                         f"one has optimize_memory={buffer.optimize_memory}")
    tensors = load_file(str(Path(folder) / meta["file"]))
    gen_state = tensors.pop(_GENERATOR, None)
    pending = {k[len(_PENDING):]: tensors.pop(k) for k in list(tensors) if k.startswith(_PENDING)}
    pos, cap = int(meta["pos"]), int(meta["capacity"])
    same = buffer.capacity == cap
    if same:  # the exact ring layout (slot indices, write position) comes back
        order, n, new_pos = torch.arange(size), size, pos
    else:  # chronological order of the saved slots (a full ring starts at pos), newest kept
        order = torch.cat([torch.arange(pos, size), torch.arange(0, pos)]) if size == cap else torch.arange(size)
        n = min(size, buffer.capacity)
        order, new_pos = order[size - n:], n % buffer.capacity
    buffer.obs_keys, buffer.info_keys = list(meta["obs_keys"]), list(meta["info_keys"])
    buffer._storage = {}
    for k, t in tensors.items():
        if t.shape[0] != size:
            raise ValueError(f"{folder}: '{key}' key '{k}' holds {t.shape[0]} rows, meta.json says {size}")
        store = torch.zeros((buffer.capacity, *t.shape[1:]), dtype=t.dtype, device=buffer.device)
        store[:n] = t[order].to(buffer.device)
        buffer._storage[k] = store
    buffer.size, buffer.pos = n, new_pos
    buffer._pending_next = {k: v.to(buffer.device) for k, v in pending.items()} or None
    if gen_state is not None and same:
        buffer.generator.set_state(gen_state)
    return n


__all__ = ["SIDECAR_DIR", "buffer_nbytes", "load_buffer", "read_meta", "save_buffers"]
