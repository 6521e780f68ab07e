"""Evaluation suites: one policy over a named list of env conditions (``eval.py eval_suite=<name>``).

A suite (``conf/eval_suite/<name>.yaml``, a :class:`Suite`) names its conditions and, for each, the keyword arguments
it adds to the env config's ``make`` (``{}`` for the nominal env) and optionally ``task``: the language instruction
given to the policy instead of the env's (language variation: a suite's ``paraphrases`` file adds one condition
``paraphrase_<i>`` per phrasing). The SO-101 pick-place conditions pass
``perturbation: {<kind>: {<argument>: <value>}}`` (:mod:`robolearn.envs.so101_perturb`); nothing here knows an env
or a policy. :func:`evaluate_suite` runs :func:`~robolearn.eval.evaluate.evaluate_policy` once per condition with the
same ``n_episodes`` and the same seeds (episode ``i`` is reset with ``seed + i`` in every condition, so the rows are
paired), then writes one table over the conditions:

- ``suite_info.json``: ``suite``, ``env``, ``policy``, ``n_episodes``, ``seeds``, ``table`` (one row per condition,
  see :func:`suite_table_rows`), ``conditions`` (each condition's ``make_kwargs``, ``aggregated``, ``per_episode``
  and ``video_paths``) and ``provenance`` when given;
- ``suite_table.md``: the same rows as a markdown table;
- ``suite_plot.png``: success per condition with its 95 % Wilson interval;
- ``conditions/<name>/eval_info.json`` and ``conditions/<name>/videos/eval_episode_<i>.mp4`` (the first
  ``max_episodes_rendered`` episodes of every condition).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from robolearn.envs.factory import EnvSpec
from robolearn.eval.evaluate import evaluate_policy
from robolearn.eval.report import write_eval_info
from robolearn.eval.rollout import Policy
from robolearn.utils.provenance import ResultsHeader, finish_header

log = logging.getLogger(__name__)

SUITE_INFO_NAME = "suite_info.json"
SUITE_TABLE_NAME = "suite_table.md"
SUITE_PLOT_NAME = "suite_plot.png"
NOMINAL = "nominal"
# the reserved key of a condition: the instruction given to the policy (the rest goes to the env's make)
TASK_KEY = "task"
PARAPHRASE_PREFIX = "paraphrase_"
_CONDITION_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Suite:
    """A named list of conditions of one env.

    Args:
        name: the suite's name (``conf/eval_suite/<name>.yaml``).
        conditions: ``{condition name: keyword arguments added to the env's make}`` in evaluation order; a None
            value is ``{}`` (the env as configured). Names are folder names: letters, digits, ``_ . -``. A
            condition named ``nominal`` is the reference of the table's ``delta_pp`` and ``lost``/``gained`` columns.
            A condition's ``task`` key (a non-empty string) is not a ``make`` argument: it replaces the env's
            instruction given to the policy (``batch["task"]``) and recorded with the episodes.
        env: the ``env.name`` this suite is written for, or a list of them (the same task seen by other cameras,
            e.g. ``[so101_pick_place, so101_pick_place_scene_camera]``); :func:`evaluate_suite` refuses another env.
            None: any.
        description: free text, copied to ``suite_info.json``.
        paraphrases: a text file of phrasings of the env's instruction (one per line; blank lines and ``#``
            comments skipped; see :func:`read_paraphrases`); each adds the condition ``paraphrase_<i>`` (1-based,
            file order) = ``{"task": <phrasing>}`` after ``conditions``. None: none.

    Raises:
        ValueError: no conditions, a bad condition name, a condition that is not a mapping, an empty ``task``, or a
            paraphrase condition that ``conditions`` already names.
        FileNotFoundError: ``paraphrases`` does not exist (from :func:`read_paraphrases`).
    """

    name: str
    conditions: dict[str, dict[str, Any]]
    env: str | list[str] | None = None
    description: str = ""
    paraphrases: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.conditions, Mapping) or not self.conditions:
            raise ValueError(f"suite {self.name!r}: conditions must be a non-empty mapping {{name: make kwargs}}")
        conditions: dict[str, dict[str, Any]] = {}
        for name, kwargs in self.conditions.items():
            if not isinstance(name, str) or not _CONDITION_NAME.match(name):
                raise ValueError(f"suite {self.name!r}: condition name {name!r} must be letters, digits, '_', '.', '-'")
            if kwargs is not None and not isinstance(kwargs, Mapping):
                raise ValueError(f"suite {self.name!r}: condition {name!r} must map make() arguments to values, "
                                 f"got {kwargs!r}")
            conditions[name] = dict(kwargs or {})
            task = conditions[name].get(TASK_KEY, "")
            if TASK_KEY in conditions[name] and not (isinstance(task, str) and task.strip()):
                raise ValueError(f"suite {self.name!r}: condition {name!r} has task={task!r}; a condition's task is "
                                 "the instruction given to the policy, a non-empty string")
        if self.paraphrases is not None:
            for i, phrasing in enumerate(read_paraphrases(self.paraphrases), start=1):
                name = f"{PARAPHRASE_PREFIX}{i}"
                if name in conditions:
                    raise ValueError(f"suite {self.name!r}: condition {name!r} is both listed and made from "
                                     f"paraphrases={self.paraphrases}; rename the listed one")
                conditions[name] = {TASK_KEY: phrasing}
        self.conditions = conditions

    @property
    def envs(self) -> list[str] | None:
        """The ``env.name`` values this suite accepts (``env`` as a list), or None for any env."""
        return [self.env] if isinstance(self.env, str) else None if self.env is None else list(self.env)


def read_paraphrases(path: str | os.PathLike) -> list[str]:
    """The phrasings in a paraphrase file: one instruction per line, surrounding spaces stripped, blank lines and
    lines starting with ``#`` skipped, duplicates refused.

    Raises:
        FileNotFoundError: no such file (named).
        ValueError: the file holds no phrasing, or a phrasing twice (named with its line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"paraphrase file {path} does not exist (one instruction per line)")
    phrasings: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text in phrasings:
            raise ValueError(f"{path}:{lineno}: {text!r} is listed twice")
        phrasings.append(text)
    if not phrasings:
        raise ValueError(f"paraphrase file {path} holds no instruction (one per line; '#' starts a comment)")
    return phrasings


def suite_table_rows(infos: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per condition from ``{condition: evaluate_policy info}`` (in order).

    Row keys: ``condition``, ``n_episodes``, ``n_success``, ``pc_success``, ``pc_success_ci95`` ([low, high] %,
    Wilson), ``delta_pp`` (``pc_success`` minus the nominal condition's, percentage points), ``lost`` / ``gained``
    (episodes, by seed, that succeed in the nominal condition and fail in this one / the reverse), ``avg_episode_length``,
    ``select_action_calls``, ``select_action_ms_mean``, ``select_action_ms_p90``, ``select_action_ms_max``
    (absent when the policy was never called), ``eval_s`` (wall time, seconds, videos included). The last three of
    ``delta_pp``/``lost``/``gained`` are None without a nominal condition.
    """
    nominal = infos.get(NOMINAL)
    nominal_success = ({e["seed"]: bool(e["success"]) for e in nominal["per_episode"]} if nominal is not None else None)
    rows = []
    for name, info in infos.items():
        agg = info["aggregated"]
        row: dict[str, Any] = {
            "condition": name,
            "n_episodes": agg["n_episodes"],
            "n_success": agg["n_success"],
            "pc_success": agg["pc_success"],
            "pc_success_ci95": list(agg["pc_success_ci95"]),
            "delta_pp": None if nominal is None else agg["pc_success"] - nominal["aggregated"]["pc_success"],
            "lost": None,
            "gained": None,
            "avg_episode_length": agg["avg_episode_length"],
        }
        if nominal_success is not None:
            pairs = [(nominal_success[e["seed"]], bool(e["success"])) for e in info["per_episode"]
                     if e["seed"] in nominal_success]
            row["lost"] = sum(n and not c for n, c in pairs)
            row["gained"] = sum(c and not n for n, c in pairs)
        for key in ("select_action_calls", "select_action_ms_mean", "select_action_ms_p90", "select_action_ms_max",
                    "eval_s"):
            if key in agg:
                row[key] = agg[key]
        rows.append(row)
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def format_table(rows: Sequence[Mapping[str, Any]], title: str = "") -> str:
    """The rows of :func:`suite_table_rows` as a markdown table (with ``title`` as a heading)."""
    lines = [f"## {title}", ""] if title else []
    lines += ["| condition | success % | 95 % CI (Wilson) | Δ vs nominal (pp) | lost / gained | avg length "
              "| select_action ms mean / p90 | eval s |",
              "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        low, high = r["pc_success_ci95"]
        lost_gained = "–" if r["lost"] is None else f"{r['lost']} / {r['gained']}"
        timing = ("–" if "select_action_ms_mean" not in r
                  else f"{r['select_action_ms_mean']:.3f} / {r['select_action_ms_p90']:.3f}")
        delta = "–" if r["delta_pp"] is None else f"{r['delta_pp']:+.1f}"
        lines.append(f"| {r['condition']} | {r['pc_success']:.1f} ({r['n_success']}/{r['n_episodes']}) "
                     f"| {low:.1f}–{high:.1f} | {delta} | {lost_gained} | {r['avg_episode_length']:.1f} | {timing} "
                     f"| {_fmt(r.get('eval_s'), '.1f')} |")
    return "\n".join(lines) + "\n"


def plot_suite(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """PNG: success % per condition (one row each, top to bottom in suite order) with 95 % Wilson interval bars, and
    the nominal condition's success as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["condition"] for r in rows]
    pc = [r["pc_success"] for r in rows]
    err = [[p - r["pc_success_ci95"][0] for p, r in zip(pc, rows)], [r["pc_success_ci95"][1] - p for p, r in zip(pc, rows)]]
    y = list(range(len(rows)))[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    colors = ["tab:gray" if n == NOMINAL else "tab:blue" for n in names]
    ax.barh(y, pc, color=colors, alpha=0.35)
    ax.errorbar(pc, y, xerr=err, fmt="o", color="black", capsize=4)
    for yi, r in zip(y, rows):
        ax.text(101, yi, f"{r['n_success']}/{r['n_episodes']}", va="center", fontsize=8)
    nominal = next((r for r in rows if r["condition"] == NOMINAL), None)
    if nominal is not None:
        ax.axvline(nominal["pc_success"], color="tab:gray", linestyle="--", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_xlim(0, 112)
    ax.set_xlabel("success % (95 % Wilson CI)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def evaluate_suite(policy: Policy, spec: EnvSpec, suite: Suite, n_episodes: int, batch_size: int = 1, seed: int = 0,
                   use_async_envs: bool = False, max_episodes_rendered: int = 0,
                   output_dir: str | os.PathLike | None = None, progress: bool = True, video_codec: str = "h264",
                   policy_name: str | None = None, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate ``policy`` on every condition of ``suite`` (see the module docstring for what is written).

    Each condition is ``spec`` with the condition's keyword arguments added to its ``make``
    (:meth:`EnvSpec.with_make_kwargs`) and named ``<env>/<condition>``; the arguments are those of
    :func:`~robolearn.eval.evaluate.evaluate_policy`, applied to every condition.

    Args:
        policy_name: how the table names the policy (e.g. its ``policy.path``); free text.
        provenance: written as ``provenance`` in ``suite_info.json``; a
            :func:`~robolearn.utils.provenance.results_header` is closed with ``finish_header`` (wall time) first.

    Returns:
        the ``suite_info.json`` dict.

    Raises:
        ValueError: the suite is written for another env (``suite.env``), or the errors of ``evaluate_policy``.
        TypeError: the env's ``make`` does not take a condition's arguments (raised when the condition's first env is
            built).
    """
    envs = suite.envs
    if envs is not None and spec.name not in envs:
        raise ValueError(f"suite {suite.name!r} is written for env {' or '.join(map(repr, envs))}, not {spec.name!r}: "
                         f"pass env={envs[0]}")
    out = None if output_dir is None else Path(output_dir)
    infos: dict[str, dict[str, Any]] = {}
    tasks: dict[str, str | None] = {}
    for name, condition in suite.conditions.items():
        log.info("suite %s: condition %s %s", suite.name, name, json.dumps(_jsonable(condition)))
        kwargs = {k: v for k, v in condition.items() if k != TASK_KEY}
        condition_spec = spec.with_make_kwargs(kwargs, name=f"{spec.name}/{name}")
        if TASK_KEY in condition:
            condition_spec = condition_spec.with_task(condition[TASK_KEY])
        tasks[name] = condition_spec.task
        infos[name] = evaluate_policy(
            policy, condition_spec, n_episodes=n_episodes,
            batch_size=batch_size, seed=seed, use_async_envs=use_async_envs, max_episodes_rendered=max_episodes_rendered,
            output_dir=None if out is None else out / "conditions" / name, write_plot=False, progress=progress,
            video_codec=video_codec,
        )
        agg = infos[name]["aggregated"]
        log.info("suite %s: %s success %.1f%% (95%% CI %.1f-%.1f)", suite.name, name, agg["pc_success"],
                 *agg["pc_success_ci95"])
    rows = suite_table_rows(infos)
    if isinstance(provenance, ResultsHeader):
        finish_header(provenance)
    info = {
        "suite": suite.name,
        "description": suite.description,
        "env": spec.name,
        "policy": policy_name,
        "n_episodes": n_episodes,
        "batch_size": min(batch_size, n_episodes),
        "seeds": [seed + i for i in range(n_episodes)],
        "table": rows,
        "conditions": [
            {"name": name, "make_kwargs": _jsonable({k: v for k, v in suite.conditions[name].items() if k != TASK_KEY}),
             "task": tasks[name], "aggregated": i["aggregated"],
             "per_episode": i["per_episode"], "video_paths": i["video_paths"]}
            for name, i in infos.items()
        ],
        "provenance": None if provenance is None else _jsonable(dict(provenance)),
    }
    if out is not None:
        title = f"{suite.name} on {spec.name}"
        write_eval_info(out / SUITE_INFO_NAME, info)
        header = (f"{n_episodes} episodes per condition, seeds {seed}–{seed + n_episodes - 1} in every condition; "
                  "success % with its 95 % Wilson score interval; lost / gained: episodes (same seed) that succeed in "
                  "`nominal` and fail here / the reverse; select_action timing per call (one call per step for a "
                  "batch of envs).")
        policy_line = f"policy: `{policy_name}`\n\n" if policy_name else ""
        instructions = ""
        if any(TASK_KEY in c for c in suite.conditions.values()):
            instructions = "\ninstruction given to the policy per condition:\n\n" + "".join(
                f"- {name}: \"{task}\"\n" for name, task in tasks.items())
        (out / SUITE_TABLE_NAME).write_text(format_table(rows, title) + "\n" + policy_line + header + "\n"
                                            + instructions)
        plot_suite(rows, out / SUITE_PLOT_NAME, title=title + (f"\n{policy_name}" if policy_name else ""))
        log.info("wrote %s, %s, %s", out / SUITE_INFO_NAME, out / SUITE_TABLE_NAME, out / SUITE_PLOT_NAME)
    return info
