"""SmolVLA full-size (SmolVLM2-500M architecture, random weights, no download) timings on CPU.

Measures, for batch sizes 1 and 2 with one 512x512 camera and a 6-d state/action: the training step time
(forward + backward + AdamW step, default freezing: VLM frozen, expert trained) and the ``select_action``
latency of a fresh chunk (prefix encoding + 10 Euler steps) vs a queued action. Few repetitions: it is big.
Writes ``benchmarks/results/vla.json`` with the provenance of :func:`robolearn.utils.provenance.results_header`
(commit, refused on a dirty tree unless ``--allow-dirty``; command, hardware, versions, wall time, load average at
start and end). Run: ``python benchmarks/vla.py [--steps 2] [--threads 2] [--allow-dirty]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from robolearn.policies.smolvla.info import build_full_size  # noqa: E402
from robolearn.policies.smolvla.tiny import write_word_tokenizer  # noqa: E402
from robolearn.policies.vla.lora import parameter_report  # noqa: E402
from robolearn.utils import provenance  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "vla.json"


def _batch(b: int, chunk: int) -> dict:
    return {"observation.images.cam0": torch.rand(b, 3, 480, 640), "observation.state": torch.randn(b, 6),
            "action": torch.randn(b, chunk, 6), "action_is_pad": torch.zeros(b, chunk, dtype=torch.bool),
            "task": ["pick the red cube and place it on the box"] * b}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed repetitions (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = parser.parse_args()
    try:
        header = provenance.results_header(Path(__file__).resolve().parents[1], allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/vla.py: {e}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    policy = build_full_size()
    build_s = time.perf_counter() - t0
    tok_dir = tempfile.mkdtemp(prefix="smolvla_tok_")
    policy.tokenizer_name = str(write_word_tokenizer(tok_dir, vocab_size=49280))
    report = parameter_report(policy)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    results = {"device": "cpu", "threads": args.threads,
               "build_s": round(build_s, 2), "params_total": report["total"], "params_trainable": report["trainable"],
               "image": [480, 640], "resize_imgs_with_padding": [512, 512], "chunk_size": policy.chunk_size,
               "num_steps": policy.model.num_steps, "repetitions": args.steps, "by_batch_size": {}}
    for b in args.batch_sizes:
        batch = _batch(b, policy.chunk_size)
        policy.train()
        times = []
        for i in range(args.steps + 1):
            t = time.perf_counter()
            loss, _ = policy(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t)
        policy.eval()
        obs = {k: batch[k] for k in ("observation.images.cam0", "observation.state", "task")}
        fresh, queued = [], []
        for i in range(args.steps + 1):
            policy.reset()
            t = time.perf_counter()
            policy.select_action(obs)
            if i:
                fresh.append(time.perf_counter() - t)
            t = time.perf_counter()
            policy.select_action(obs)
            queued.append(time.perf_counter() - t)
        results["by_batch_size"][str(b)] = {
            "train_step_s": [round(x, 3) for x in times], "train_step_mean_s": round(sum(times) / len(times), 3),
            "select_action_new_chunk_s": [round(x, 3) for x in fresh],
            "select_action_new_chunk_mean_s": round(sum(fresh) / len(fresh), 3),
            "select_action_queued_s": round(sum(queued) / len(queued), 6)}
        print(b, results["by_batch_size"][str(b)], flush=True)
    results = {"benchmark": "vla", **provenance.finish_header(header), **results}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
