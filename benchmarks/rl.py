"""Online RL throughput on CPU: env steps/s and SAC gradient updates/s on the planar reach task (state-only),
written to ``benchmarks/results/rl.json``.

Measured, each for ``--seconds`` of wall time after a short warm-up, with one torch thread:

- ``env_steps_per_s``: raw ``env.step`` with random actions (the simulator alone);
- ``actor_random_steps_per_s``: :class:`~robolearn.rl.actor.EnvActor` + replay ``add`` with random actions;
- ``actor_policy_steps_per_s``: the same with ``SACPolicy.sample_action`` choosing the action;
- ``updates_per_s``: SAC gradient updates (sample a batch, critic + actor + temperature losses, one Adam step,
  Polyak update) without Lightning;
- ``lightning_updates_per_s``: ``trainer.fit`` on ``OnlineRLDataModule`` (utd_ratio 1: one env step + one update per
  training step, loggers and checkpoints off), i.e. the whole online loop;
- ``actor_learner``: HIL-SERL transport over loopback gRPC (:mod:`robolearn.rl.hil`): ``transitions_per_s`` pushed by a
  :class:`~robolearn.rl.hil.actor.LearnerClient` in batches of ``push_batch`` (msgpack + safetensors encode, validate,
  queue) and ingested into the learner's replay buffer, and ``weights_pulls_per_s`` of the small SAC's state dict.

Network sizes: lerobot's defaults (latent 256, MLPs [256, 256], 2 critics) and a small setting ([64, 64]).

    python benchmarks/rl.py [--seconds 10] [--batch-size 256] [--allow-dirty]
    python benchmarks/rl.py --actor-learner-only   # the transport alone, to benchmarks/results/rl_actor_learner.json

Each run writes its whole file with the provenance of :func:`robolearn.utils.provenance.results_header` (commit,
refused on a dirty tree unless ``--allow-dirty``; command, hardware, versions, wall time) and the load average at
start and end: on a shared machine, throughput scales with the free cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from robolearn.policies.sac import SACPolicy
from robolearn.rl.actor import EnvActor
from robolearn.rl.datamodule import OnlineRLDataModule
from robolearn.utils import provenance

HERE = Path(__file__).resolve().parent
ENV_ID = "robolearn.envs.planar_arm:robolearn/PlanarReach-v0"
FEATURES_MAP = {"agent_pos": "observation.state", "environment_state": "observation.environment_state"}
NETWORK_KEYS = ("latent_dim", "state_encoder_hidden_dim", "actor_network_kwargs", "critic_network_kwargs")
SIZES = {
    "lerobot_default": {},
    # the network sizes conf/experiment/sac_planar_reach.yaml trains with
    "small_64": {k: v for k, v in OmegaConf.to_container(
        OmegaConf.load(HERE.parent / "conf" / "experiment" / "sac_planar_reach.yaml").policy).items()
        if k in NETWORK_KEYS},
}


def rate(fn, seconds: float, warmup: int = 20) -> tuple[float, int]:
    """Calls of ``fn`` per second over about ``seconds`` (after ``warmup`` untimed calls); returns (rate, calls)."""
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0), n


def datamodule(batch_size: int) -> OnlineRLDataModule:
    return OnlineRLDataModule(ENV_ID, FEATURES_MAP, env_kwargs={"max_episode_steps": 100}, batch_size=batch_size,
                              online_step_before_learning=1000, stats_steps=1000, seed=0)


def measure_env(seconds: float, batch_size: int) -> dict:
    dm = datamodule(batch_size)
    env = dm.make_env()
    env.reset(seed=0)

    def raw_step():
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()

    policy = SACPolicy(dm.features, dm.stats)
    dm.connect(policy)
    out = {"env_steps_per_s": rate(raw_step, seconds)[0],
           "actor_random_steps_per_s": rate(lambda: dm.env_step(random=True), seconds)[0],
           "actor_policy_steps_per_s": rate(lambda: dm.env_step(), seconds)[0]}
    return {k: round(v, 1) for k, v in out.items()}


def measure_updates(size: str, seconds: float, batch_size: int) -> dict:
    torch.manual_seed(0)
    dm = datamodule(batch_size)
    policy = SACPolicy(dm.features, dm.stats, **SIZES[size])
    dm.connect(policy)
    dm.next_batch()
    opt = torch.optim.Adam(policy.get_optim_params())

    def update():
        loss, _ = policy(dm.sampler.sample(batch_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        policy.update_targets()

    updates, n = rate(update, seconds, warmup=5)
    return {"updates_per_s": round(updates, 1), "updates_timed": n,
            "parameters": sum(p.numel() for p in policy.parameters())}


def measure_lightning(size: str, steps: int, batch_size: int) -> dict:
    torch.manual_seed(0)
    dm = datamodule(batch_size)
    policy = SACPolicy(dm.features, dm.stats, **SIZES[size])
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    t0 = time.perf_counter()
    trainer.fit(policy, datamodule=dm)
    seconds = time.perf_counter() - t0  # includes the 1000 random warm-up env steps
    return {"lightning_updates_per_s": round(steps / seconds, 1), "lightning_steps": steps,
            "lightning_seconds": round(seconds, 2), "env_steps": dm.actor.env_steps}


def measure_actor_learner(seconds: float, push_batch: int = 32) -> dict:
    """Loopback gRPC throughput of the HIL-SERL learner's transition server and weight serving (see module doc)."""
    from robolearn.rl.hil.actor import LearnerClient
    from robolearn.rl.hil.learner import RemoteActorDataModule
    from robolearn.rl.hil.protocol import IS_INTERVENTION, stack_transitions

    dm = RemoteActorDataModule(ENV_ID, FEATURES_MAP, env_kwargs={"max_episode_steps": 100}, batch_size=32,
                               online_step_before_learning=1, stats_steps=100, port=0, drq_pad=0)
    dm.connect(SACPolicy(features=dm.features, stats=dm.stats, **SIZES["small_64"]))
    actor = EnvActor(dm.make_env(), FEATURES_MAP)
    steps = [actor.step(None)[0] for _ in range(push_batch)]
    for t in steps:
        t[IS_INTERVENTION] = torch.tensor(0.0)
    batch = stack_transitions(steps)
    client = LearnerClient(dm.server.address)
    try:
        def push():
            client.push(batch)
            dm.ingest()

        pushes, _ = rate(push, seconds, warmup=5)
        pulls, _ = rate(lambda: client.get_weights(0), seconds / 2, warmup=2)
    finally:
        client.close()
        dm.close()
    return {"push_batch": push_batch, "transitions_per_s": round(pushes * push_batch, 1),
            "weights_pulls_per_s": round(pulls, 1), "weights_bytes": sum(v.numel() * v.element_size()
                                                                         for v in dm.policy.state_dict().values())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lightning-steps", type=int, default=300)
    p.add_argument("--out", type=Path, default=None,
                   help="default: results/rl.json (results/rl_actor_learner.json with --actor-learner-only)")
    p.add_argument("--actor-learner-only", action="store_true",
                   help="measure only the actor–learner transport, in a file of its own")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = p.parse_args()
    try:
        header = provenance.results_header(HERE.parent, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/rl.py: {e}")
    out = args.out or HERE / "results" / ("rl_actor_learner.json" if args.actor_learner_only else "rl.json")
    torch.set_num_threads(1)
    if args.actor_learner_only:
        actor_learner = measure_actor_learner(args.seconds)
        print("actor_learner:", actor_learner)
        record = {"benchmark": "rl, actor-learner transport only", **provenance.finish_header(header),
                  "torch_threads": 1, "actor_learner": actor_learner}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"written to {out}")
        return
    env = measure_env(args.seconds, args.batch_size)
    print("env:", env)
    results = []
    for size in SIZES:
        r = {"size": size, **measure_updates(size, args.seconds, args.batch_size),
             **measure_lightning(size, args.lightning_steps, args.batch_size)}
        print(r)
        results.append(r)
    actor_learner = measure_actor_learner(args.seconds)
    print("actor_learner:", actor_learner)
    record = {
        "benchmark": "rl",
        "task": "robolearn/PlanarReach-v0 (velocity control), state-only observations",
        "batch_size": args.batch_size,
        **provenance.finish_header(header),
        "torch_threads": 1,
        "env": env,
        "sac": results,
        "actor_learner": actor_learner,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
