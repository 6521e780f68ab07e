"""The README's benchmark table, generated from ``benchmarks/results/*.json`` (never typed by hand).

Each results file written by a script in ``benchmarks/`` has one row formatter here that reads the numbers the
README quotes. The table names the commit every file was measured at; a results file without a formatter, or a
formatter whose file is missing, is an error, so the README cannot fall behind the results directory.

    python benchmarks/readme_table.py                 # print the table
    python benchmarks/readme_table.py --update-readme # rewrite README.md's block between the markers
    python benchmarks/readme_table.py --check         # exit 1 when README.md's block differs from the results

The rows follow the order of :data:`ROWS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
BEGIN = "<!-- benchmark table: written by python benchmarks/readme_table.py --update-readme -->"
END = "<!-- end of benchmark table -->"


def _n(x: float, digits: int = 0) -> str:
    """``x`` with thousands separators and ``digits`` decimals."""
    return f"{x:,.{digits}f}"


def _dataloading(d: dict[str, Any]) -> tuple[str, str]:
    rows = {(r["num_workers"], r["streaming"]): r["samples_per_s"] for r in d["results"]}
    return ("`dataloading.py` (PushT, batch 32, image + 16-step action windows)",
            f"{_n(rows[(0, False)])} samples/s (0 workers), {_n(rows[(2, False)])} (2 workers); streaming "
            f"{_n(rows[(0, True)])} / {_n(rows[(2, True)])} (a 96×96 fixture that fits the decoded-frame cache: a "
            "memory copy, not decoding)")


def _record(d: dict[str, Any]) -> tuple[str, str]:
    m = d["modes"]["streaming"]
    return (f"`record.py` loop (2 cameras 640×480 @ {d['fps']:.0f} fps)",
            f"{m['mean_achieved_hz']:.1f} Hz achieved with background encoding, {m['mean_save_episode_s']:.1f} s per "
            f"`save_episode`, of which {d['fsync_cost_s']['streaming'] * 1000:.0f} ms is the `fsync` that makes it "
            "durable")


def _inference(d: dict[str, Any]) -> tuple[str, str]:
    r = d["results"]
    rt = r["async_round_trip_loopback"]
    return ("`inference.py`",
            f"ACT new chunk {r['act']['select_action_chunk']['p50_ms']:.0f} ms p50 ({d['device'].upper()}), queue hit "
            f"{r['act']['select_action_queue_hit']['p50_ms']:.3f} ms; Diffusion (100 DDPM steps) new chunk "
            f"{r['diffusion']['select_action_chunk']['p50_ms'] / 1000:.1f} s; async loopback round trip "
            f"{rt['round_trip']['p50_ms']:.0f} ms p50 ({rt['overhead']['p50_ms']:.1f} ms overhead)")


def _rl(d: dict[str, Any]) -> tuple[str, str]:
    sac = {s["size"]: s for s in d["sac"]}
    big, small = sac["lerobot_default"], sac["small_64"]
    return ("`rl.py` (planar reach)",
            f"{_n(d['env']['env_steps_per_s'])} env steps/s; SAC {big['updates_per_s']:.0f} updates/s (lerobot sizes), "
            f"{small['updates_per_s']:.0f} (64-wide); {big['lightning_updates_per_s']:.0f} and "
            f"{small['lightning_updates_per_s']:.0f} steps/s for the whole online loop in `trainer.fit`")


def _vla(d: dict[str, Any]) -> tuple[str, str]:
    b1 = d["by_batch_size"]["1"]
    return (f"`vla.py` (SmolVLA {d['params_total'] / 1e6:.0f} M, {d['device'].upper()})",
            f"{b1['train_step_mean_s']:.1f} s per training step at batch 1; {b1['select_action_new_chunk_mean_s']:.1f} s "
            "per new action chunk")


def _aloha(d: dict[str, Any]) -> tuple[str, str]:
    r = d["results"]
    parts = [f"{name.replace('_', ' ')} {round(v['success_rate'] * v['episodes'])}/{v['episodes']}"
             for name, v in r.items()]
    return "`aloha_experts.py`", f"scripted experts' successes: {', '.join(parts)}"


def _hf_memory(d: dict[str, Any]) -> tuple[str, str]:
    s = d["summary"]
    f, sp = s["fork"], s["spawn"]
    ds = d["dataset"]
    return (f"`hf_dataset_memory.py` ({ds['frames'] / 1e6:.0f} M state-only frames, 2 workers; numpy reader at "
            f"{d['before']['commit'][:7]} vs HF `datasets`)",
            f"PSS per worker {f['before']['per_worker_mib_median']['pss']:.0f} → "
            f"{f['after']['per_worker_mib_median']['pss']:.0f} MiB forked, "
            f"{sp['before']['per_worker_mib_median']['pss']:.0f} → {sp['after']['per_worker_mib_median']['pss']:.0f} "
            f"MiB spawned; main process RSS {f['before']['main_mib_median']['rss']:.0f} → "
            f"{f['after']['main_mib_median']['rss']:.0f} MiB; samples/s: median of paired after/before ratios "
            f"×{f['after_vs_before']['throughput_ratio_paired_median']:.2f} forked, "
            f"×{sp['after_vs_before']['throughput_ratio_paired_median']:.2f} spawned "
            f"({f['after']['runs']} rounds each)")


def _augment(d: dict[str, Any]) -> tuple[str, str]:
    r = d["results"][0]
    lo = r["loader_ms_per_batch"]
    c = r["compute_ms_per_batch"]
    return (f"`augment_cpu.py` (`augment={d['augment']}`, batch {r['batch_size']}, "
            f"{'×'.join(str(x) for x in r['frame_shape'][1:])} frames)",
            f"in {lo['num_workers']} loader workers: {lo['workers']['median_ms']:.0f} ms per batch vs "
            f"{lo['none']['median_ms']:.0f} without augmentation, batched in the main process "
            f"{lo['main_batched']['median_ms']:.0f} ms; compute per batch {c['per_sample_1thread']['median_ms']:.0f} ms "
            f"per sample vs {c['batched_1thread']['median_ms']:.0f} ms batched (one thread; shared CPU, medians)")


def _episode_subsets(d: dict[str, Any]) -> tuple[str, str]:
    s, ds = d["summary"], d["dataset"]
    on, off = s["all/segments_on"], s["all/segments_off"]
    sub_on, sub_off = s["spread_5/segments_on"], s["spread_5/segments_off"]
    return (f"`episode_subsets.py` ({ds['episodes']} episodes, {ds['image'][0]}×{ds['image'][0]} AV1, batch "
            f"{d['settings']['batch_size']}, {d['settings']['num_workers']} workers; reader caching episode segments "
            "vs whole files, alternated)",
            f"5 of {ds['episodes']} episodes read at {sub_on['cold_ratio_to_all']:.1f}× the all-episodes rate while the "
            f"cache fills ({_n(sub_on['cold_samples_per_s_median'])} vs {_n(on['cold_samples_per_s_median'])} "
            f"samples/s; whole-file caching: {_n(sub_off['cold_samples_per_s_median'])} vs "
            f"{_n(off['cold_samples_per_s_median'])}) and ×{sub_on['warm_ratio_to_all']:.2f} of it once warm "
            f"({_n(sub_on['warm_samples_per_s_median'])} vs {_n(on['warm_samples_per_s_median'])})")


def _vla_quantize(d: dict[str, Any]) -> tuple[str, str]:
    def mode(model: str, name: str) -> dict[str, Any]:
        return d["models"][model]["modes"][name]

    def speed(model: str) -> str:
        a, b = mode(model, "none"), mode(model, "int8_dynamic")
        return (f"×{b['speedup_p50_vs_none']:.2f} ({a['latency_new_chunk_s']['p50']:.2f} → "
                f"{b['latency_new_chunk_s']['p50']:.2f} s)")

    def mem(model: str) -> str:
        return (f"{mode(model, 'none')['memory']['model_mib']['total']:.0f} → "
                f"{mode(model, 'int8_dynamic')['memory']['model_mib']['total']:.0f} MiB")

    sm, pi = d["models"]["smolvla"], d["models"]["pi0"]
    wo = mode("smolvla", "int8_weight_only")
    return (f"`vla_quantize.py` (SmolVLA {sm['params'] / 1e6:.0f} M; π0 at {pi['size']['pi0_layers']}/18 layers; "
            f"random weights, {d['device'].upper()})",
            f"`int8_dynamic`: new chunk SmolVLA {speed('smolvla')}, π0 {speed('pi0')}; model memory {mem('smolvla')} "
            f"and {mem('pi0')}; normalized L1 vs fp32 "
            f"{mode('smolvla', 'int8_dynamic')['action_error_vs_fp32']['normalized_l1']:.3f} / "
            f"{mode('pi0', 'int8_dynamic')['action_error_vs_fp32']['normalized_l1']:.3f}; `int8_weight_only` saves "
            f"the memory at ×{wo['speedup_p50_vs_none']:.2f} speed on this CPU")


def _rtc(d: dict[str, Any]) -> tuple[str, str]:
    s = d["summary"]
    return (f"`rtc.py` (tiny SmolVLA, async loopback, {d['robot']['fps']} Hz, +{d['injected_delay_steps']:.0f} steps "
            "delay)",
            f"distance of each chunk switch from the queued plan {s['plain']['off_plan_at_switch_l2']['mean']:.2f} → "
            f"{s['rtc']['off_plan_at_switch_l2']['mean']:.3f} (L2) with RTC; observation-to-action p50 "
            f"{s['plain']['obs_to_action_ms']['p50']:.0f} → {s['rtc']['obs_to_action_ms']['p50']:.0f} ms")


def _main_job(d: dict[str, Any]) -> tuple[str, str]:
    e = d["eval"]
    lo, hi = e["pc_success_ci95"]
    tp = d["eval_speed"]["trained_policy"]
    return ("`main_job.py` (`python train.py`, then `eval.py` on 50 episodes)",
            f"`train.py` {d['train']['wall_s'] / 60:.1f} min; {e['pc_success']:.0f} % success (95 % CI "
            f"{lo:.0f}–{hi:.0f} %) over {e['n_episodes']} episodes; eval {tp['now']['steps_per_s']:.0f} env steps/s for the trained policy "
            f"(×{tp['speedup']:.1f} vs before)")


def _main_job_camera(d: dict[str, Any]) -> tuple[str, str]:
    e = d["eval"]
    lo, hi = e["pc_success_ci95"]
    steps = d["train"]["final_rollout_eval"]["global_step"]
    return (f"`main_job.py experiment=so101_pick_place_camera trainer.max_steps={steps}`",
            f"`train.py` {d['train']['wall_s'] / 60:.0f} min (rendering the data included); {e['pc_success']:.0f} % "
            f"success (95 % CI {lo:.0f}–{hi:.0f} %) over {e['n_episodes']} episodes")


def _startup(d: dict[str, Any]) -> tuple[str, str]:
    """benchmarks/startup.py: ``train.py`` vs ``lerobot-train`` start-up, wall time and disk."""
    s, h, t = d["settings"], d["help"], d["train"]
    rl, lr = t["robolearn"], t["lerobot"]
    return (f"`startup.py` (`train.py` vs `lerobot-train` {d['lerobot_version']}: Diffusion, {s['steps']} steps, "
            f"batch {s['batch_size']}, {s['num_workers']} workers, {s['device'].upper()})",
            f"`--help` {h['robolearn']['median']:.1f} vs {h['lerobot']['median']:.1f} s; training starts at "
            f"{rl['training_start_s']['median']:.1f} vs {lr['training_start_s']['median']:.1f} s, first step ends at "
            f"{rl['first_step_s']['median']:.1f} vs {lr['first_step_s']['median']:.1f} s; whole run "
            f"{rl['wall_s']['median']:.1f} vs {lr['wall_s']['median']:.1f} s; output dir "
            f"{rl['disk_bytes']['median'] / 1e9:.2f} vs {lr['disk_bytes']['median'] / 1e9:.2f} GB (medians of "
            f"{s['help_repeats']} and {s['train_repeats']} alternated runs)")


def _train_step_vs_lerobot(d: dict[str, Any]) -> tuple[str, str]:
    """benchmarks/train_step_vs_lerobot.py: per case, the robolearn/lerobot ratio of the training step and of
    ``select_action`` with an empty queue, at each thread count; where measured, robolearn's bf16 chunk time over
    lerobot's float32 one (and over lerobot's autocast one)."""
    rows = d["results"]
    threads = sorted({r["threads"] for r in rows})
    parts = []
    for case in dict.fromkeys(r["case"] for r in rows):
        cells = []
        for metric, name in (("train_step", "train step"), ("select_action_chunk", "new chunk")):
            got = [r for r in rows if r["case"] == case and r["metric"] == metric and r["ratio"] is not None]
            if got:
                cells.append(f"{name} " + " / ".join(f"×{r['ratio']:.2f}" for r in sorted(got, key=lambda r: r["threads"])))
        bf16 = sorted((r for r in rows if r["case"] == case and r["metric"] == "select_action_chunk_bf16"
                       and r.get("ratio_vs_lerobot_fp32") is not None), key=lambda r: r["threads"])
        if bf16:
            cells.append("new chunk with `policy.quantize=bf16` " + " / ".join(
                f"×{r['ratio_vs_lerobot_fp32']:.2f}" for r in bf16) + " of lerobot's float32 (" + " / ".join(
                f"×{r['ratio']:.2f}" for r in bf16) + " of its `use_amp` autocast)")
        parts.append(f"{case}: " + ", ".join(cells))
    return (f"`train_step_vs_lerobot.py` (robolearn / lerobot time, equal config, batch {d['batch_size']} training, "
            f"batch 1 inference; {' / '.join(map(str, threads))} thread{'' if threads == [1] else 's'})",
            "; ".join(parts))


def _realistic_loading(d: dict[str, Any]) -> tuple[str, str]:
    """benchmarks/realistic_loading.py: per dataset, the robolearn/lerobot samples/s ratio at each worker count, both
    rates at the fewest workers with the single-core raw-decode bound of the same files, and the largest worker's peak
    RSS of both at the most workers measured."""
    names = {"av1": "AV1", "h264": "H.264", "pusht": "PushT"}
    parts = []
    for name, ds in d["datasets"].items():
        rows = sorted((r for r in d["rows"] if r["dataset"] == name), key=lambda r: r["num_workers"])
        if not rows:
            continue
        ratios = " / ".join("–" if r["ratio_robolearn_to_lerobot"] is None
                            else f"×{r['ratio_robolearn_to_lerobot']:.2f}" for r in rows)
        workers = "/".join(str(r["num_workers"]) for r in rows)
        last = rows[-1]
        mem = ""
        if last["robolearn_peak_rss_worker_mib"] is not None and last["lerobot_peak_rss_worker_mib"] is not None:
            mem = (f", worker peak RSS {_n(last['robolearn_peak_rss_worker_mib'])} vs "
                   f"{_n(last['lerobot_peak_rss_worker_mib'])} MiB at {last['num_workers']} workers")
        bound = rows[0].get("raw_decode_samples_per_s_bound_single")
        bound = f", raw-decode bound {_n(bound, 1)} per core" if bound else ""
        parts.append(f"{names.get(name, name)}: {ratios} ({workers} workers; "
                     f"{_n(rows[0]['robolearn_samples_per_s'], 1)} vs {_n(rows[0]['lerobot_samples_per_s'] or 0, 1)} "
                     f"samples/s at {rows[0]['num_workers']}{bound}){mem}")
    av1 = d["datasets"].get("av1", {})
    size = f"{av1['episodes']} × {av1['seconds_per_episode']:g} s, 2 cameras {av1['image'][1]}×{av1['image'][0]}; " \
        if "episodes" in av1 else ""
    return (f"`realistic_loading.py` (robolearn / lerobot 0.6.1 samples/s, {size}batch 32, 2-frame camera and "
            f"{d['settings']['windows']['action'].split()[0]}-step action windows)", "; ".join(parts))


#: results file stem -> formatter ``(results dict) -> (benchmark cell, result cell)``, in table order.
ROWS: dict[str, Callable[[dict[str, Any]], tuple[str, str]]] = {
    "main_job": _main_job,
    "main_job_camera": _main_job_camera,
    "dataloading": _dataloading,
    "realistic_loading": _realistic_loading,
    "episode_subsets": _episode_subsets,
    "hf_dataset_memory": _hf_memory,
    "augment_cpu": _augment,
    "record": _record,
    "inference": _inference,
    "rl": _rl,
    "vla": _vla,
    "vla_quantize": _vla_quantize,
    "rtc": _rtc,
    "aloha_experts": _aloha,
    "startup": _startup,
    "train_step_vs_lerobot": _train_step_vs_lerobot,
}


def table(results: Path = RESULTS) -> str:
    """The markdown table, one row per results file: benchmark, result, and the commit and machine it ran on.

    Raises:
        ValueError: a ``*.json`` in ``results`` has no formatter in :data:`ROWS` (add one), or a formatter's file
            is missing, or a file cannot be read as the formatter expects (the file and key are named).
    """
    present = {p.stem for p in results.glob("*.json")}
    unknown = sorted(present - set(ROWS))
    if unknown:
        raise ValueError(f"{results}: no README row formatter for {unknown}; add one to ROWS in {__file__}")
    missing = sorted(set(ROWS) - present)
    if missing:
        raise ValueError(f"{results}: results files {missing} are missing (their formatters are in ROWS)")
    lines = ["| benchmark | result | measured at |", "|---|---|---|"]
    for stem, fmt in ROWS.items():
        path = results / f"{stem}.json"
        d = json.loads(path.read_text())
        try:
            name, result = fmt(d)
            hw = d["hardware"]
            where = f"{hw['cpus']}-core CPU" + (f", {', '.join(hw['gpus'])}" if hw.get("gpus") else "")
            commit = d["source"]["commit"][:7] + ("" if d["source"].get("clean") else " (dirty)")
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"{path}: cannot read {e!r} for the README row") from e
        lines.append(f"| {name} | {result} | [{commit}](benchmarks/results/{stem}.json), {where} |")
    return "\n".join(lines) + "\n"


def render(text: str, results: Path = RESULTS) -> str:
    """``text`` (README.md's content) with the block between :data:`BEGIN` and :data:`END` replaced by :func:`table`.

    Raises:
        ValueError: the markers are missing.
    """
    if BEGIN not in text or END not in text:
        raise ValueError(f"README: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table(results)}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--update-readme", action="store_true", help="rewrite README.md's benchmark table")
    g.add_argument("--check", action="store_true", help="exit 1 when README.md's table differs from the results")
    args = p.parse_args(argv)
    if not (args.update_readme or args.check):
        print(table(), end="")
        return 0
    text = README.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{README}: the benchmark table differs from {RESULTS}; run python benchmarks/readme_table.py "
                  "--update-readme", file=sys.stderr)
            return 1
        return 0
    if new != text:
        README.write_text(new)
    print(f"{README}: {'updated' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
