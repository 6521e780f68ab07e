"""Provenance records, persistent run ids, ckpt_path=auto, and resuming after a SIGKILL in the middle of an epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from robolearn.utils import provenance
from robolearn.utils.resolvers import persistent_run_id

from .test_train import REPO, TINY, _cfg, train_script


def test_run_id_is_persistent(tmp_path):
    a = persistent_run_id(str(tmp_path / "run"))
    assert len(a) == 8 and (tmp_path / "run" / ".run_id").read_text().strip() == a
    assert persistent_run_id(str(tmp_path / "run")) == a
    assert persistent_run_id(str(tmp_path / "other")) != a


def test_ckpt_auto(tmp_path):
    assert train_script.resolve_ckpt_path("auto", str(tmp_path)) is None
    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 3}, tmp_path / "checkpoints" / "last.ckpt")
    assert train_script.resolve_ckpt_path("auto", str(tmp_path)) == str(tmp_path / "checkpoints" / "last.ckpt")


def test_truncated_last_ckpt_falls_back_to_the_newest_complete_step_checkpoint(tmp_path, caplog):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for step in (2, 4, 6):
        torch.save({"global_step": step}, ckpts / f"step_{step:06d}.ckpt")
    whole = (ckpts / "step_000006.ckpt").read_bytes()
    (ckpts / "step_000006.ckpt").write_bytes(whole[: len(whole) // 2])  # killed while writing step 6 ...
    (ckpts / "last.ckpt").write_bytes(whole[: len(whole) // 2])         # ... and its last.ckpt copy
    for mode in ("auto", "last"):
        assert train_script.resolve_ckpt_path(mode, str(tmp_path)) == str(ckpts / "step_000004.ckpt")
    assert "last.ckpt is not a complete checkpoint" in caplog.text and "step_000006.ckpt" in caplog.text
    # an explicit ckpt_path is named when it is damaged or missing
    with pytest.raises(ValueError, match=r"step_000006.ckpt \(\d+ bytes\) is not a complete checkpoint"):
        train_script.resolve_ckpt_path(str(ckpts / "step_000006.ckpt"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        train_script.resolve_ckpt_path(str(ckpts / "nope.ckpt"), str(tmp_path))
    assert train_script.resolve_ckpt_path(str(ckpts / "step_000004.ckpt"), str(tmp_path)) == str(ckpts / "step_000004.ckpt")
    for step in (2, 4):
        (ckpts / f"step_{step:06d}.ckpt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"last.ckpt is not a complete checkpoint .* no complete step_\*.ckpt"):
        train_script.resolve_ckpt_path("auto", str(tmp_path))


def test_provenance_appended_per_start(tmp_path, shared_datasets):
    root = shared_datasets / "lerobot_written_pusht_random"
    train_script.train(_cfg(tmp_path, root, "act", ["trainer.max_steps=2", "callbacks.progress_bar=null"]))
    train_script.train(_cfg(tmp_path, root, "act", ["trainer.max_steps=3", "callbacks.progress_bar=null"]))
    lines = (tmp_path / "run" / "provenance.jsonl").read_text().splitlines()
    first, second = (json.loads(x) for x in lines)
    assert first["ckpt_path"] is None and second["ckpt_path"].endswith("last.ckpt")  # auto-resumed
    assert first["dataset"]["info_sha256"] == provenance.file_sha256(root / "meta" / "info.json")
    assert first["dataset"]["total_episodes"] == 5 and first["seed"] == 1000
    assert first["config"]["policy"]["_target_"].endswith("ACTPolicy")
    assert len(first["git"]["commit"]) == 40 and isinstance(first["git"]["dirty"], bool)
    assert first["versions"]["torch"] == torch.__version__.split("+")[0]
    assert first["dataset"]["fingerprint"] == provenance.dataset_fingerprint(root)
    assert first["hardware"]["cpus"] == os.cpu_count()
    assert ("diff_sha256" in first["git"]) == first["git"]["dirty"]
    # the export carries the record of the start that wrote it
    exported = json.loads((tmp_path / "run" / "checkpoints" / "pretrained_model" / "provenance.json").read_text())
    assert exported["ckpt_path"] == second["ckpt_path"]
    assert exported["dataset"]["fingerprint"] == first["dataset"]["fingerprint"]


def test_dataset_fingerprint_is_a_content_hash(tmp_path, shared_datasets):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = tmp_path / "pusht"
    shutil.copytree(shared_datasets / "lerobot_written_pusht_random", copy)
    cache = tmp_path / "cache"
    before = provenance.dataset_fingerprint(copy, cache_dir=cache)
    assert before == provenance.dataset_fingerprint(shared_datasets / "lerobot_written_pusht_random", cache_dir=cache)
    entries = list(cache.iterdir())  # one entry per folder, keyed by its files' paths, sizes and times
    assert len(entries) == 2 and all(e.read_text().strip() == before for e in entries)
    for entry in entries:
        entry.write_text("from the cache\n")
    assert provenance.dataset_fingerprint(copy, cache_dir=cache) == "from the cache"  # unchanged files: not rehashed
    data = copy / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(data)
    action = table.column("action").to_pylist()
    action[7] = [action[7][0] + 1.0, action[7][1]]  # same counts, one value changed
    table = table.set_column(table.schema.get_field_index("action"), table.schema.field("action"),
                             pa.array(action, type=table.schema.field("action").type))
    pq.write_table(table, data)
    changed = provenance.dataset_fingerprint(copy, cache_dir=cache)  # a rewritten file: hashed again
    assert changed not in (before, "from the cache") and changed == provenance.dataset_fingerprint(copy)


def test_git_state_outside_checkout(tmp_path):
    assert provenance.git_state(tmp_path) is None


def test_resume_after_sigkill_mid_epoch(tmp_path, shared_datasets):
    """Kill a run after a mid-epoch checkpoint; the resumed run starts at the checkpoint's global step with its
    optimizer state."""
    root = shared_datasets / "lerobot_written_pusht_random"
    out = tmp_path / "run"
    common = [
        "experiment=none", "dataset=local", f"dataset.root={root}", "dataset.num_workers=0", "dataset.batch_size=4",
        "dataset.val_fraction=0", "policy=act", *TINY["act"], "trainer=smoke", "trainer.max_steps=100000",
        "trainer.limit_val_batches=0", "callbacks.model_checkpoint.every_n_train_steps=3",
        "callbacks.progress_bar=null", f"paths.output_dir={out}", f"hydra.run.dir={out}", "logger=none",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "train.py", *common], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if last.is_file():
                try:
                    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
                except Exception:  # being replaced right now
                    step = 0
                if step >= 6:
                    break
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint at step >= 6 within the time limit")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    step = ckpt["global_step"]
    steps_per_epoch = 400 // 4  # 500 frames, batch 4, drop_last, ... mid-epoch when step % epoch != 0
    assert step % steps_per_epoch != 0
    adam_step = next(iter(ckpt["optimizer_states"][0]["state"].values()))["step"]

    seen = {}

    class Probe(__import__("lightning").Callback):
        def on_train_start(self, trainer, pl_module):
            seen["step"] = trainer.global_step
            opt = trainer.optimizers[0]
            seen["adam_step"] = float(next(iter(opt.state.values()))["step"])  # a tensor Adam updates in place

    cfg = _cfg(tmp_path, root, "act", [f"trainer.max_steps={step + 2}", "callbacks.progress_bar=null",
                                       "dataset.val_fraction=0", "dataset.batch_size=4", "logger=none"])
    import train as t

    orig = t.instantiate_group

    def with_probe(node):
        items = orig(node)
        return items + [Probe()] if node is cfg.get("callbacks") else items

    t.instantiate_group = with_probe
    try:
        trainer, _, _ = t.train(cfg)
    finally:
        t.instantiate_group = orig
    assert seen["step"] == step
    assert float(seen["adam_step"]) == float(adam_step)
    assert trainer.global_step == step + 2


BATCHES: list[list[int]] = []


class BatchIndexProbe(__import__("lightning").Callback):
    """Records the dataset ``index`` of every training sample, per step."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        BATCHES.append(batch["index"].tolist())


def test_resumed_run_sees_the_batches_of_the_uninterrupted_run(tmp_path, shared_datasets):
    """A run stopped mid-epoch and resumed from last.ckpt continues the same data order (the DataLoader's sampler
    state is in the checkpoint), as a requeued SLURM job must."""
    root = shared_datasets / "lerobot_written_pusht_random"
    probe = ["+callbacks.batch_probe._target_=tests.test_provenance_resume.BatchIndexProbe",
             "callbacks.progress_bar=null", "logger=none", "trainer.val_check_interval=4"]  # checkpoints at step 4
    BATCHES.clear()
    train_script.train(_cfg(tmp_path / "whole", root, "act", ["trainer.max_steps=8", *probe]))
    whole = list(BATCHES)
    BATCHES.clear()
    train_script.train(_cfg(tmp_path / "split", root, "act", ["trainer.max_steps=4", *probe]))
    trainer, _, _ = train_script.train(_cfg(tmp_path / "split", root, "act", ["trainer.max_steps=8", *probe]))
    assert trainer.ckpt_path.endswith("last.ckpt")  # ckpt_path=auto resumed at step 4
    assert len(whole) == 8 and len(BATCHES) == 8
    assert BATCHES[:4] == whole[:4]
    assert BATCHES[4:] == whole[4:], "the resumed run must continue the interrupted epoch's order"
