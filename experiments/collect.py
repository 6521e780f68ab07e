"""Turn the finished runs of a sweep into the paper's table and plots.

    python experiments/collect.py <multirun dir> [--metric eval/pc_success] [--group policy.chunk_size]
        [--table out.md] [--csv out.csv] [--plot out.png] [--curves curves.png]
    python experiments/collect.py --wandb <entity/project> [--filter-group <wandb group>] ...

Inputs per run (a Hydra multirun job folder ``<sweep dir>/<job num>/``):

- ``.hydra/overrides.yaml``: the swept values (the run's group is every override except ``seed``);
- ``csv/version_*/metrics.csv`` (CSVLogger): the metric's series over ``step``;
- ``eval_info.json`` (written by ``eval.py`` into the run dir, or by the rollout callback): its ``aggregated``
  ``pc_success`` overrides nothing but is used when the CSV has no such metric.

**Provenance.** Every run must carry ``provenance.jsonl`` (written by ``train.py`` at each start) showing that it
ran from a clean git tree, at one commit that exists in this repository (``--repo``, default: the checkout holding
this script) and contains every config file the run selected (``.hydra/hydra.yaml``'s ``runtime.choices``, e.g.
``conf/experiment/<name>.yaml``). A run that fails a check stops the collection with the reasons, unless
``--allow-dirty``: then its group is marked ``UNVERIFIED`` in the table and the CSV. The table names the commits.

Per run two numbers are taken, as Diffusion Policy (Chi et al. 2023, Sec. 5.1) reports them: **best** = the max of
the metric over the run's evaluations (best checkpoint), **last** = the value at the last evaluation. Per group:
mean ± sample std (ddof 1; 0 for one seed) over seeds, and the number of seeds. For loss-like metrics (name with
``loss``) best is the minimum.

Outputs: a markdown table (``--table``), a CSV (``--csv``), a plot of the metric against the swept value with
error bars (``--plot``, when the group is one numeric or categorical key) and learning curves of each group
(``--curves``, mean over seeds against step).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import yaml

__all__ = ["RunResult", "check_provenance", "load_multirun", "summarize", "write_table", "write_csv", "plot_sweep",
           "plot_curves"]


@dataclass
class RunResult:
    """One run: its swept overrides, seed, and the metric's series ``steps``/``values``."""

    path: str
    overrides: dict[str, str]
    seed: str | None
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def group_key(self, keys: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
        items = {k: v for k, v in self.overrides.items() if k not in ("seed",)}
        if keys:
            items = {k: items.get(k, "") for k in keys}
        return tuple(sorted(items.items()))

    def best(self, lower_is_better: bool) -> float:
        return float(min(self.values) if lower_is_better else max(self.values))

    def last(self) -> float:
        return float(self.values[int(np.argmax(self.steps))])


def _parse_overrides(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text()) or []
    out = {}
    for item in data:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _metric_series(run_dir: Path, metric: str) -> tuple[list[int], list[float]]:
    steps: list[int] = []
    values: list[float] = []
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                v = row.get(metric)
                if v not in (None, ""):
                    steps.append(int(float(row.get("step") or 0)))
                    values.append(float(v))
    if not values:
        info = run_dir / "eval_info.json"
        if info.is_file():
            agg = json.loads(info.read_text()).get("aggregated", {})
            key = metric.split("/")[-1]
            if key in agg:
                steps, values = [0], [float(agg[key])]
    return steps, values


def _git_has(repo: Path, obj: str) -> bool:
    proc = subprocess.run(["git", "cat-file", "-e", obj], cwd=repo, capture_output=True)
    return proc.returncode == 0


def _selected_config_files(job: Path, repo: Path) -> list[str]:
    """``conf/<group>/<name>.yaml`` of every config group choice of the run that is a file of ``repo``'s tree."""
    path = job / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return []
    choices = ((yaml.safe_load(path.read_text()) or {}).get("hydra", {}).get("runtime", {}).get("choices")) or {}
    files = []
    for group, name in sorted(choices.items()):
        if name is None or str(group).startswith("hydra/"):
            continue
        rel = f"conf/{group}/{name}.yaml"
        if (repo / rel).is_file():
            files.append(rel)
    return files


def check_provenance(job: str | Path, repo: str | Path) -> tuple[list[str], list[str]]:
    """The commits a run started from and what is wrong with its provenance (empty when it is trustworthy).

    Checks ``<job>/provenance.jsonl`` (one record per start of the run): it exists and parses; every start ran
    from a git checkout with a clean tree; all starts ran at one commit; that commit exists in ``repo`` and
    contains every config file the run selected (see :func:`_selected_config_files`).

    Returns:
        ``(commits, problems)``: the distinct commits in start order, and one sentence per failed check.
    """
    job, repo = Path(job), Path(repo)
    path = job / "provenance.jsonl"
    if not path.is_file():
        return [], [f"{job}: no provenance.jsonl (not started by train.py, or by a version without provenance)"]
    commits: list[str] = []
    problems: list[str] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            git = json.loads(line).get("git")
        except (ValueError, AttributeError):
            problems.append(f"{path}:{n}: not a JSON object")
            continue
        if not git or not git.get("commit"):
            problems.append(f"{path}:{n}: started outside a git checkout (no commit)")
            continue
        if git["commit"] not in commits:
            commits.append(git["commit"])
        if git.get("dirty"):
            problems.append(f"{path}:{n}: started from a dirty tree at {git['commit'][:7]} "
                            f"(diff sha256 {str(git.get('diff_sha256'))[:12]})")
    if not commits and not problems:
        problems.append(f"{path}: empty")
    if len(commits) > 1:
        problems.append(f"{path}: its starts ran at different commits {[c[:7] for c in commits]}")
    for commit in commits:
        if not _git_has(repo, f"{commit}^{{commit}}"):
            problems.append(f"{job}: commit {commit[:7]} is not in the repository at {repo}")
            continue
        for rel in _selected_config_files(job, repo):
            if not _git_has(repo, f"{commit}:{rel}"):
                problems.append(f"{job}: commit {commit[:7]} does not contain {rel}, which the run selected")
    return commits, problems


def load_multirun(sweep_dir: str | Path, metric: str, repo: str | Path | None = None) -> list[RunResult]:
    """Every job folder of a Hydra multirun directory that has the metric, with its provenance checked against
    ``repo`` (default: the checkout holding this script; see :func:`check_provenance`).

    Raises:
        FileNotFoundError: ``sweep_dir`` has no job folder with ``.hydra/overrides.yaml``.
    """
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parent.parent
    sweep_dir = Path(sweep_dir)
    jobs = sorted(p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml"))
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir}: no Hydra job folders (<job>/.hydra/overrides.yaml) found")
    runs = []
    for job in jobs:
        overrides = _parse_overrides(job / ".hydra" / "overrides.yaml")
        steps, values = _metric_series(job, metric)
        if values:
            commits, problems = check_provenance(job, repo)
            runs.append(RunResult(str(job), overrides, overrides.get("seed"), steps, values, commits, problems))
    return runs


def _wandb_problems(url: str, config: dict[str, str], repo: Path) -> tuple[list[str], list[str]]:
    """Provenance checks on the ``provenance/*`` keys ``train.py`` logs to W&B: a commit in ``repo``, a clean tree.
    (The selected config files are not checked: W&B does not keep Hydra's choices.)"""
    commit = config.get("provenance/git_commit")
    if not commit or commit == "None":
        return [], [f"{url}: no provenance/git_commit in the run's config"]
    problems = []
    if config.get("provenance/git_dirty") != "False":
        problems.append(f"{url}: started from a dirty tree at {commit[:7]}")
    if not _git_has(repo, f"{commit}^{{commit}}"):
        problems.append(f"{url}: commit {commit[:7]} is not in the repository at {repo}")
    return [commit], problems


def load_wandb(project: str, metric: str, group: str | None = None,
               repo: str | Path | None = None) -> list[RunResult]:  # pragma: no cover - network
    """Runs of a W&B project (``entity/project``) through ``wandb.Api``: config as overrides, history of ``metric``,
    provenance from the ``provenance/*`` config keys (:func:`_wandb_problems`)."""
    import wandb

    repo = Path(repo) if repo is not None else Path(__file__).resolve().parent.parent
    api = wandb.Api()
    filters = {"group": group} if group else None
    runs = []
    for run in api.runs(project, filters=filters):
        hist = run.history(keys=["trainer/global_step", metric], pandas=False)
        steps = [int(h.get("trainer/global_step", i)) for i, h in enumerate(hist) if metric in h]
        values = [float(h[metric]) for h in hist if metric in h]
        flat = {k: str(v) for k, v in _flatten(run.config).items()}
        if values:
            commits, problems = _wandb_problems(run.url, flat, repo)
            runs.append(RunResult(run.url, flat, flat.get("seed"), steps, values, commits, problems))
    return runs


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _mean_std(x: Iterable[float]) -> tuple[float, float]:
    a = np.asarray(list(x), dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def summarize(runs: Sequence[RunResult], metric: str, keys: Sequence[str] | None = None) -> list[dict]:
    """One row per group: ``group`` (dict), ``n_seeds``, ``best_mean``, ``best_std``, ``last_mean``, ``last_std``,
    ``commits`` (sorted, of all its runs) and ``unverified`` (how many of its runs failed the provenance checks).

    Rows are sorted by the group's values (numerically where they parse as numbers).
    """
    lower = "loss" in metric
    groups: dict[tuple, list[RunResult]] = {}
    for r in runs:
        groups.setdefault(r.group_key(keys), []).append(r)
    rows = []
    for key, members in groups.items():
        bm, bs = _mean_std(r.best(lower) for r in members)
        lm, ls = _mean_std(r.last() for r in members)
        commits = sorted({c for r in members for c in r.commits})
        rows.append({"group": dict(key), "n_seeds": len(members), "best_mean": bm, "best_std": bs,
                     "last_mean": lm, "last_std": ls, "commits": commits,
                     "unverified": sum(1 for r in members if r.problems)})

    def order(row):
        out = []
        for _, v in sorted(row["group"].items()):
            try:
                out.append((0, float(v), ""))
            except ValueError:
                out.append((1, 0.0, v))
        return out

    return sorted(rows, key=order)


def _fmt(m: float, s: float) -> str:
    return f"{m:.3f} ± {s:.3f}"


def _provenance_cell(row: dict) -> str:
    commits = ", ".join(c[:7] for c in row.get("commits", [])) or "no commit"
    bad = row.get("unverified", 0)
    return f"{commits} UNVERIFIED ({bad}/{row['n_seeds']} runs)" if bad else commits


def write_table(rows: Sequence[dict], metric: str, path: str | Path, title: str | None = None) -> Path:
    """Markdown table: one column per group key, then ``n``, best and last (mean ± std over seeds), and the
    provenance (commits; ``UNVERIFIED`` when runs failed the checks and were let through by ``--allow-dirty``)."""
    keys = sorted({k for r in rows for k in r["group"]})
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join([*keys, "seeds", f"{metric} best", f"{metric} last", "commit"]) + " |")
    lines.append("|" + "---|" * (len(keys) + 4))
    for r in rows:
        cells = [str(r["group"].get(k, "")) for k in keys]
        lines.append("| " + " | ".join([*cells, str(r["n_seeds"]), _fmt(r["best_mean"], r["best_std"]),
                                         _fmt(r["last_mean"], r["last_std"]), _provenance_cell(r)]) + " |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    keys = sorted({k for r in rows for k in r["group"]})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*keys, "n_seeds", "best_mean", "best_std", "last_mean", "last_std", "commits", "unverified"])
        for r in rows:
            w.writerow([r["group"].get(k, "") for k in keys]
                       + [r["n_seeds"], r["best_mean"], r["best_std"], r["last_mean"], r["last_std"],
                          " ".join(r.get("commits", [])), r.get("unverified", 0)])
    return path


def plot_sweep(rows: Sequence[dict], metric: str, path: str | Path, title: str | None = None) -> Path:
    """Metric (best and last, mean ± std) against the swept value; groups of several keys are labelled jointly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [", ".join(f"{v}" for _, v in sorted(r["group"].items())) or "all" for r in rows]
    try:
        xs = [float(lbl) for lbl in labels]
        numeric = True
    except ValueError:
        xs, numeric = list(range(len(labels))), False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(xs, [r["best_mean"] for r in rows], yerr=[r["best_std"] for r in rows], marker="o", capsize=3,
                label="best checkpoint")
    ax.errorbar(xs, [r["last_mean"] for r in rows], yerr=[r["last_std"] for r in rows], marker="s", capsize=3,
                label="last checkpoint")
    if numeric and len(xs) > 2 and min(xs) > 0 and max(xs) / min(xs) >= 50:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(xs, labels, rotation=20)
    keys = sorted({k for r in rows for k in r["group"]})
    ax.set_xlabel(", ".join(keys) or "run")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(runs: Sequence[RunResult], metric: str, path: str | Path, keys: Sequence[str] | None = None) -> Path:
    """Learning curves: the metric against step, mean over the seeds of each group (steps common to all seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[RunResult]] = {}
    for r in runs:
        groups.setdefault(r.group_key(keys), []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, members in sorted(groups.items()):
        common = sorted(set.intersection(*(set(m.steps) for m in members)))
        if not common:
            continue
        ys = np.array([[dict(zip(m.steps, m.values))[s] for s in common] for m in members])
        ax.plot(common, ys.mean(axis=0), label=", ".join(f"{k}={v}" for k, v in key) or "all")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir", nargs="?", type=Path, help="Hydra multirun directory")
    p.add_argument("--wandb", default=None, help="entity/project to read instead of a directory")
    p.add_argument("--filter-group", default=None, help="W&B run group")
    p.add_argument("--metric", default="eval/pc_success")
    p.add_argument("--group", nargs="*", default=None, help="override keys defining a group (default: all but seed)")
    p.add_argument("--title", default=None)
    p.add_argument("--table", type=Path, default=None)
    p.add_argument("--csv", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--curves", type=Path, default=None)
    p.add_argument("--repo", type=Path, default=None,
                   help="git checkout the runs' commits must be in (default: the one holding this script)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="tabulate runs that fail the provenance checks, marked UNVERIFIED")
    args = p.parse_args(argv)
    if args.wandb:
        runs = load_wandb(args.wandb, args.metric, args.filter_group, args.repo)
    elif args.sweep_dir is not None:
        runs = load_multirun(args.sweep_dir, args.metric, args.repo)
    else:
        p.error("give a multirun directory or --wandb entity/project")
    if not runs:
        raise SystemExit(f"no run has metric {args.metric!r}")
    problems = [p for r in runs for p in r.problems]
    if problems and not args.allow_dirty:
        raise SystemExit("refusing runs whose provenance does not hold (--allow-dirty tabulates them, marked "
                         "UNVERIFIED):\n  " + "\n  ".join(problems))
    rows = summarize(runs, args.metric, args.group)
    for r in rows:
        print(r["group"], r["n_seeds"], _fmt(r["best_mean"], r["best_std"]), _fmt(r["last_mean"], r["last_std"]))
    if args.table:
        print(f"table: {write_table(rows, args.metric, args.table, args.title)}")
    if args.csv:
        print(f"csv: {write_csv(rows, args.csv)}")
    if args.plot:
        print(f"plot: {plot_sweep(rows, args.metric, args.plot, args.title)}")
    if args.curves:
        print(f"curves: {plot_curves(runs, args.metric, args.curves, args.group)}")
    if math.isnan(rows[0]["best_mean"]):
        raise SystemExit("metric values are NaN")


if __name__ == "__main__":
    main()
