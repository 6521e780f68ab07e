"""The model card (``README.md``) of a pretrained policy pushed to the Hugging Face Hub.

:func:`model_card` reads a ``pretrained_model/`` folder as data (``config.yaml`` through
:func:`~robolearn.policies.checkpoint_config.load_untrusted_config`, or lerobot's ``config.json``/``train_config.json``,
and ``provenance.json``; nothing is resolved or instantiated, and only a ``policy._target_`` under
``robolearn.policies`` is imported, to name the policy type) and writes a card with a YAML header
(license, ``library_name``, ``pipeline_tag: robotics``, tags, the dataset) and sections: usage, training data,
policy (features, hyper-parameters, LoRA), training settings, evaluation (an ``eval_info.json`` of
:func:`robolearn.eval.evaluate_policy` or the training rollouts, when given) and provenance (commit, dataset
fingerprint, versions, hardware, command).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["model_card", "read_eval_info"]

_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
_NOT_HYPERPARAMETERS = ("_target_", "_partial_", "features", "stats", "optimizer", "lr_scheduler", "input_features",
                        "output_features", "normalization_mapping", "type")
_MAX_VALUE_CHARS = 80


def read_eval_info(path: str | os.PathLike) -> dict[str, Any]:
    """An ``eval_info.json`` (``{"env", "n_episodes", "seed", "aggregated": {"pc_success", ...}, ...}``) as a dict.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, or no ``aggregated`` mapping holding a numeric ``pc_success`` (the message names the
            file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such eval_info.json")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    agg = info.get("aggregated") if isinstance(info, dict) else None
    if not isinstance(agg, dict) or "pc_success" not in agg:
        raise ValueError(f"{path}: not an eval_info.json of robolearn's evaluation (no aggregated.pc_success)")
    if isinstance(agg["pc_success"], bool) or not isinstance(agg["pc_success"], (int, float)):
        raise ValueError(f"{path}: aggregated.pc_success must be a number, got {agg['pc_success']!r}")
    return info


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from e


def _get(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...`` or None when a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _short(value: Any) -> str | None:
    """``value`` as compact JSON when it is at most ``_MAX_VALUE_CHARS`` characters, else None."""
    text = json.dumps(value, default=str, separators=(", ", ": "))
    return text if len(text) <= _MAX_VALUE_CHARS else None


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}",
            *[f"| {' | '.join(_cell(c) for c in row)} |" for row in rows]]


def _folder_facts(folder: Path) -> dict[str, Any]:
    """What the card needs from the folder: format, policy class/type, features, hyper-parameters, run config."""
    from robolearn.policies.checkpoint_config import load_untrusted_config, policy_class

    if (folder / "config.yaml").is_file():
        source = str(folder / "config.yaml")
        config = load_untrusted_config(source)
        node = config.get("policy") if isinstance(config.get("policy"), dict) else {}
        if "_target_" not in node:
            raise KeyError(f"{source} has no policy._target_")
        cls = policy_class(node["_target_"], source)  # one of robolearn's policy classes, or UntrustedConfigError
        ptype = getattr(cls, "lerobot_type", None) or cls.__module__.split(".")[2]
        raw = node.get("features") if isinstance(node.get("features"), dict) else {}
        features = {k: (_get(v, "type"), _get(v, "shape")) for k, v in raw.items()}
        return {"format": "robolearn", "class": cls.__name__, "type": ptype, "features": features,
                "hparams": node, "config": config}
    config = _read_json(folder / "config.json")
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"{folder / 'config.json'}: not a lerobot policy config (no 'type')")
    features = {}
    for group in ("input_features", "output_features"):
        raw = config.get(group) if isinstance(config.get(group), dict) else {}
        for k, v in raw.items():
            features[k] = (_get(v, "type"), _get(v, "shape"))
    train = _read_json(folder / "train_config.json") if (folder / "train_config.json").is_file() else {}
    return {"format": "lerobot", "class": None, "type": str(config.get("type")), "features": features,
            "hparams": config, "config": train}


def _dataset(facts: Mapping[str, Any], provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    record = _get(provenance, "dataset") or {}
    return {"repo_id": record.get("repo_id") or _get(facts["config"], "dataset", "repo_id"),
            "revision": record.get("revision") or _get(facts["config"], "dataset", "revision"),
            "episodes": record.get("total_episodes"), "frames": record.get("total_frames"),
            "fingerprint": record.get("fingerprint")}


def _hub_dataset(repo_id: Any) -> bool:
    """True if ``repo_id`` can name a Hub dataset (``owner/name``, not the ``local/...`` label of dataset=local)."""
    return isinstance(repo_id, str) and _REPO_ID.fullmatch(repo_id) is not None and not repo_id.startswith("local/")


def _lora_lines(facts: Mapping[str, Any]) -> list[str]:
    merged = _get(facts["config"], "lora_export")
    peft = _get(facts["hparams"], "peft")
    if _get(merged, "mode") == "merged":
        p = merged.get("peft") or {}
        return [f"LoRA adapters (r={p.get('r')}, lora_alpha={p.get('lora_alpha')}) were merged into the base weights: "
                "this is a plain model (`peft.r = 0`).", ""]
    if isinstance(peft, Mapping) and int(peft.get("r") or 0) > 0:
        return [f"LoRA adapters (r={peft.get('r')}, lora_alpha={peft.get('lora_alpha')}) are stored beside the base "
                "weights (`<module>.base_layer.*`, `<module>.lora_A/B.*`); loading re-injects them with `peft`.", ""]
    return []


def _policy_section(facts: Mapping[str, Any]) -> list[str]:
    lines = ["## Policy", ""]
    if facts["features"]:
        lines += _table(["feature", "type", "shape"],
                        [(f"`{k}`", t, list(s) if isinstance(s, list) else s) for k, (t, s) in facts["features"].items()])
        lines.append("")
    rows = []
    for key, value in facts["hparams"].items():
        text = None if key in _NOT_HYPERPARAMETERS else _short(value)
        if text is not None:
            rows.append((f"`{key}`", f"`{text}`"))
    if rows:
        config_file = "config.yaml" if facts["format"] == "robolearn" else "config.json"
        lines += [f"Hyper-parameters (values over {_MAX_VALUE_CHARS} characters are in `{config_file}`):", "",
                  *_table(["argument", "value"], rows), ""]
    return lines + _lora_lines(facts)


def _training_section(config: Mapping[str, Any], step: int | None) -> list[str]:
    optimizer = _get(config, "policy", "optimizer")
    max_steps = _get(config, "trainer", "max_steps")
    if step is None:
        steps = None if max_steps is None else f"{max_steps} (trainer.max_steps)"
    else:
        steps = step if max_steps is None else f"{step} (trainer.max_steps {max_steps})"
    rows = [("optimizer steps", steps),
            ("seed", _get(config, "seed")), ("batch size", _get(config, "dataset", "batch_size")),
            ("precision", _get(config, "trainer", "precision")),
            ("optimizer", None if not isinstance(optimizer, Mapping) else
             f"{optimizer.get('_target_')} (lr {optimizer.get('lr')})"),
            ("augmentation", _get(config, "augment", "_target_"))]
    rows = [(k, v) for k, v in rows if v is not None]
    if not rows:
        return []
    return ["## Training", "", *_table(["setting", "value"], rows), "",
            "The whole resolved run config is in `config.yaml`.", ""]


def _eval_section(info: Mapping[str, Any] | None, step: int | None) -> list[str]:
    if info is None:
        return ["## Evaluation", "", "No evaluation was attached to this upload.", ""]
    agg = info["aggregated"]
    ci = agg.get("pc_success_ci95")
    numbers = isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci)
    ci_text = f" (95 % CI {ci[0]:.1f}-{ci[1]:.1f} %)" if numbers else ""
    eval_step = info.get("global_step")
    lines = ["## Evaluation", "",
             f"Closed-loop rollouts in `{info.get('env')}`: {info.get('n_episodes')} episodes, seeds from "
             f"{info.get('seed')}" + (f", at training step {eval_step}" if eval_step is not None else "") +
             " (`eval_info.json` in this repo).", ""]
    rows = [("success", f"{agg['pc_success']:.1f} %{ci_text}")]
    for key in ("avg_sum_reward", "avg_max_reward", "avg_episode_length"):
        if isinstance(agg.get(key), (int, float)):
            rows.append((key, f"{agg[key]:.3f}"))
    lines += [*_table(["metric", "value"], rows), ""]
    if step is not None and eval_step is not None and int(eval_step) != int(step):
        lines += [f"Note: this evaluation ran at step {eval_step}; the uploaded weights are from step {step}.", ""]
    return lines


def _provenance_section(record: Mapping[str, Any] | None) -> list[str]:
    if not record:
        return []
    git = record.get("git") or {}
    versions = record.get("versions") or {}
    hardware = record.get("hardware") or {}
    rows = [("time (UTC)", record.get("time")),
            ("git commit", None if not git else f"`{git.get('commit')}`" + (
                f" with uncommitted changes (diff sha256 `{git.get('diff_sha256')}`)" if git.get("dirty") else "")),
            ("dataset fingerprint", _get(record, "dataset", "fingerprint")),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v and k != "platform") or None),
            ("hardware", None if not hardware else f"{hardware.get('cpu')} ({hardware.get('cpus')} CPUs), "
                                                   f"GPUs: {', '.join(hardware.get('gpus') or []) or 'none'}"),
            ("resumed from", record.get("ckpt_path"))]
    lines = ["## Provenance", "", "From `provenance.json` (written by the export):", "",
             *_table(["", ""], [(k, v) for k, v in rows if v is not None]), ""]
    argv = record.get("argv")
    if isinstance(argv, list) and argv:
        lines += ["Command:", "", "```bash", " ".join(shlex.quote(str(a)) for a in argv), "```", ""]
    return lines


def model_card(folder: str | os.PathLike, repo_id: str, eval_info: Mapping[str, Any] | None = None,
               step: int | None = None, tags: Sequence[str] = (), license: str | None = "apache-2.0",
               include_provenance: bool = True) -> str:
    """The ``README.md`` text for the policy in ``folder`` pushed as ``repo_id``.

    Args:
        folder: a ``pretrained_model`` folder: robolearn's (``config.yaml``) or lerobot's (``config.json``).
        repo_id: the Hub model repo (``owner/name``), used in the title and the usage lines.
        eval_info: a :func:`read_eval_info` dict, shown under "Evaluation"; None says there is none.
        step: optimizer steps the exported weights were trained for (the export callback passes it), else the
            config's ``trainer.max_steps`` is shown; an evaluation from another step is flagged.
        tags: extra Hub tags (``robotics``, ``robolearn`` and the policy type are always there; ``lerobot`` for a
            lerobot-format folder).
        license: SPDX-style id for the header, or None.
        include_provenance: show the "Provenance" section from ``provenance.json`` when the folder has one.
    Returns:
        The card: ``---`` YAML header ``---`` then Markdown.
    Raises:
        FileNotFoundError: ``folder`` has neither ``config.yaml`` nor ``config.json``.
        KeyError: ``config.yaml`` has no ``policy._target_``.
        ValueError: a config file that is not readable data, or whose ``policy._target_`` is not a robolearn policy
            class (``UntrustedConfigError``, naming the file and the key).
    """
    from huggingface_hub import ModelCardData

    folder = Path(folder)
    if not (folder / "config.yaml").is_file() and not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has neither config.yaml (robolearn) nor config.json (lerobot): not a "
                                "pretrained_model folder")
    facts = _folder_facts(folder)
    provenance = _read_json(folder / "provenance.json") if (folder / "provenance.json").is_file() else None
    dataset = _dataset(facts, provenance)
    lerobot = facts["format"] == "lerobot"
    base_tags = ["robotics", "robolearn", *(["lerobot"] if lerobot else []), facts["type"]]
    header = ModelCardData(
        license=license, library_name="lerobot" if lerobot else "robolearn", pipeline_tag="robotics",
        tags=base_tags + [t for t in tags if t not in base_tags],
        datasets=[dataset["repo_id"]] if _hub_dataset(dataset["repo_id"]) else None,
        model_name=facts["type"])
    title = facts["class"] or facts["type"]
    fmt = ("lerobot 0.6.1 format (`config.json`, `model.safetensors`, processor files): it loads with lerobot's "
           f"`{facts['type']}` policy `from_pretrained` and with robolearn's `load_policy`" if lerobot else
           "robolearn format (`config.yaml`, `model.safetensors`, `stats.json`): it loads with robolearn's "
           "`load_policy`; `python -m robolearn.policies.convert --to-lerobot` writes lerobot's format")
    env = f"env={info_env}" if (info_env := (eval_info or {}).get("env")) else "env=<simulator>"
    body = [f"# {repo_id}", "", f"A `{title}` (policy type `{facts['type']}`) trained with robolearn, in the {fmt}.",
            "", "## Usage", "", "```python", "from robolearn.policies import load_policy", "",
            f'policy = load_policy("{repo_id}")  # rebuilt from the config as data, weights loaded strictly',
            'action = policy.select_action(observation)  # raw units in and out', "```", "", "```bash",
            f"python eval.py policy.path={repo_id} {env} eval.n_episodes=50", "```", "",
            "## Training data", ""]
    if dataset["repo_id"] is None:
        body += ["The dataset is not recorded in this folder.", ""]
    else:
        body += [*_table(["dataset", "revision", "episodes", "frames", "content fingerprint (sha256)"],
                         [(f"`{dataset['repo_id']}`", dataset["revision"] or "-", dataset["episodes"],
                           dataset["frames"], dataset["fingerprint"])]), ""]
    body += _policy_section(facts)
    body += _training_section(facts["config"], step)
    body += _eval_section(eval_info, step)
    if include_provenance:
        body += _provenance_section(provenance)
    return f"---\n{header.to_yaml()}\n---\n\n" + "\n".join(body)
