"""lerobot side of ``benchmarks/train_step_vs_lerobot.py``: run by the lerobot venv's Python, imports only lerobot,
torch and numpy (never robolearn).

    /path/to/lerobot_venv/bin/python benchmarks/lerobot_train_step_probe.py '<spec json>'

``spec``: ``{"policy": "act" | "diffusion", "config": {<ACTConfig / DiffusionConfig overrides>}, "features":
{key: {"type": "VISUAL" | "STATE" | "ACTION", "shape": [...]}}, "batch_size": int, "threads": int, "seed": int}``.

Builds the policy with ``<Policy>Config(**config, device="cpu")``, its pre/post-processor pipelines
(``make_pre_post_processors`` with random statistics), the optimizer and scheduler of the config's presets, one random
training batch and one random observation, then prints ``{"ready": true, ...}`` and serves commands, one JSON object a
line on stdin, each answered by one JSON line on stdout:

- ``{"op": "train", "n": k}``: ``k`` training steps as ``lerobot_train.update_policy`` does them (preprocessor on
  the raw batch, ``policy.forward``, backward, ``clip_grad_norm_`` to ``grad_clip_norm``, optimizer step, zero_grad,
  scheduler step, ``loss.item()``); answers ``{"ms": [k floats]}`` (wall time of each step).
- ``{"op": "chunk", "n": k}``: ``k`` ``select_action`` calls with an empty queue (``policy.reset()`` first, not
  timed); answers ``{"ms": [...], "ms_bare": [...]}``: ``ms`` includes the pre/post-processors (what lerobot's eval
  loop runs per step), ``ms_bare`` is the same call sequence timed around ``policy.select_action`` alone.
- ``{"op": "hit", "n": k}``: ``k`` calls served from the action queue (refilled, untimed, when it runs out); same
  answer.
- ``{"op": "chunk_amp", "n": k}``: as ``chunk``, inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` (what
  ``lerobot-eval`` runs with ``policy.use_amp=true`` on CPU); same answer.
- ``{"op": "quit"}``: exit.

``chunk`` and ``hit`` clear the optimizer state first (memory; a later ``train`` starts Adam afresh).

Errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch


def _stats(features: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for key, f in features.items():
        shape = (f["shape"][0], 1, 1) if f["type"] == "VISUAL" else tuple(f["shape"])
        lo = rng.uniform(-1.0, 0.0, shape).astype(np.float32)
        out[key] = {"mean": torch.from_numpy(rng.uniform(-0.5, 0.5, shape).astype(np.float32)),
                    "std": torch.from_numpy(rng.uniform(0.5, 1.5, shape).astype(np.float32)),
                    "min": torch.from_numpy(lo), "max": torch.from_numpy(lo + 1.0)}
    return out


def _build(spec: dict):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors

    feats = {k: PolicyFeature(type=FeatureType[f["type"]], shape=tuple(f["shape"])) for k, f in spec["features"].items()}
    inputs = {k: f for k, f in feats.items() if f.type is not FeatureType.ACTION}
    outputs = {k: f for k, f in feats.items() if f.type is FeatureType.ACTION}
    config = dict(spec["config"])
    for key in ("crop_shape", "down_dims", "optimizer_betas"):
        if config.get(key) is not None:
            config[key] = tuple(config[key])
    if spec["policy"] == "act":
        from lerobot.policies.act.configuration_act import ACTConfig as Config
        from lerobot.policies.act.modeling_act import ACTPolicy as Policy
    elif spec["policy"] == "diffusion":
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig as Config
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy as Policy
    else:
        raise ValueError(f"unknown policy {spec['policy']!r}")
    cfg = Config(input_features=inputs, output_features=outputs, device="cpu", **config)
    policy = Policy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=_stats(spec["features"], spec.get("seed", 0)))
    opt_cfg = cfg.get_optimizer_preset()
    optimizer = opt_cfg.build(policy.get_optim_params())
    sched_cfg = cfg.get_scheduler_preset()
    scheduler = sched_cfg.build(optimizer, num_training_steps=100_000) if sched_cfg is not None else None
    return cfg, policy, pre, post, optimizer, scheduler, float(opt_cfg.grad_clip_norm)


def _batch(spec: dict, cfg, g: torch.Generator) -> dict:
    """Raw training batch: observations ``(B, [T,] *shape)`` (T = n_obs_steps for Diffusion), actions ``(B, K, A)``."""
    b = spec["batch_size"]
    n_obs = cfg.n_obs_steps if spec["policy"] == "diffusion" else None
    k = cfg.horizon if spec["policy"] == "diffusion" else cfg.chunk_size
    out = {}
    for key, f in spec["features"].items():
        shape = tuple(f["shape"])
        if f["type"] == "ACTION":
            out[key] = torch.randn(b, k, *shape, generator=g)
            out[f"{key}_is_pad"] = torch.zeros(b, k, dtype=torch.bool)
        elif f["type"] == "VISUAL":
            out[key] = torch.rand(b, *((n_obs,) if n_obs else ()), *shape, generator=g)
        else:
            out[key] = torch.randn(b, *((n_obs,) if n_obs else ()), *shape, generator=g)
    return out


def _observation(spec: dict, g: torch.Generator) -> dict:
    out = {}
    for key, f in spec["features"].items():
        if f["type"] == "VISUAL":
            out[key] = torch.rand(1, *f["shape"], generator=g)
        elif f["type"] != "ACTION":
            out[key] = torch.randn(1, *f["shape"], generator=g)
    return out


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(spec.get("seed", 0))
    cfg, policy, pre, post, optimizer, scheduler, clip = _build(spec)
    g = torch.Generator().manual_seed(spec.get("seed", 0))
    batch = _batch(spec, cfg, g)
    obs = _observation(spec, g)
    n_action_steps = cfg.n_action_steps

    def train_step() -> float:
        start = time.perf_counter()
        policy.train()
        loss, _ = policy.forward(pre(batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()
        if scheduler is not None:
            scheduler.step()
        loss.item()
        return (time.perf_counter() - start) * 1e3

    def call() -> tuple[float, float]:
        start = time.perf_counter()
        o = pre(obs)
        t0 = time.perf_counter()
        action = policy.select_action(o)
        t1 = time.perf_counter()
        post(action)
        return (time.perf_counter() - start) * 1e3, (t1 - t0) * 1e3

    remaining = 0  # actions left in the queue

    print(json.dumps({"ready": True, "params_M": round(sum(p.numel() for p in policy.parameters()) / 1e6, 2),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "n_action_steps": n_action_steps}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op, n = cmd["op"], int(cmd.get("n", 0))
        if op == "quit":
            break
        if op == "train":
            print(json.dumps({"ms": [train_step() for _ in range(n)]}), flush=True)
            continue
        optimizer.state.clear()  # inference from here on: free the Adam state (2 GB for Diffusion)
        policy.zero_grad(set_to_none=True)
        full, bare = [], []
        amp = op == "chunk_amp"
        if amp:
            op = "chunk"
        for _ in range(n):
            if op == "chunk":
                policy.reset()
            elif remaining == 0:
                policy.reset()
                call()
                remaining = n_action_steps - 1
            if amp:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    f, b = call()
            else:
                f, b = call()
            full.append(f)
            bare.append(b)
            remaining = n_action_steps - 1 if op == "chunk" else remaining - 1
        print(json.dumps({"ms": full, "ms_bare": bare}), flush=True)


if __name__ == "__main__":
    main()
