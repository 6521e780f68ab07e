"""Rename a robot's observation keys to the input keys of the policy deployed on it (lerobot's ``rename_map``).

A policy trained on a dataset whose camera was called ``observation.images.top`` can run on a robot whose camera
is ``front``: ``eval.py robot=... 'rename_map={observation.images.front: observation.images.top}'``. Keys on both
sides are dataset keys: the robot's as it records them (:func:`robolearn.record.frames.robot_dataset_features`:
``observation.state``, ``observation.environment_state``, ``observation.images.<camera>``) and the policy's
``input_features``. Only the policy's input batch is renamed; recorded rollouts keep the robot's keys.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def check_rename_map(rename_map: Mapping[str, Any] | None, robot_keys: Iterable[str],
                     policy_keys: Iterable[str] | None = None) -> dict[str, str]:
    """Validate ``rename_map`` (``{robot key: policy key}``) and return it as a plain ``dict``.

    Args:
        rename_map: the mapping (None or empty: no renaming).
        robot_keys: the robot's observation dataset keys.
        policy_keys: the policy's input keys, or None when the policy does not declare them (then targets are not
            checked against them).

    Raises:
        KeyError: a key of ``rename_map`` is not an observation key of the robot (names it and the robot's keys).
        ValueError: a key or value that is not a non-empty string; two robot keys renamed to the same policy key,
            or onto a robot key that keeps its name; a target the policy does not take (names the policy's inputs).
    """
    rename = dict(rename_map or {})
    robot_keys = list(robot_keys)
    bad = [f"{k!r}: {v!r}" for k, v in rename.items() if not (isinstance(k, str) and k and isinstance(v, str) and v)]
    if bad:
        raise ValueError(f"rename_map entries must map a robot key to a policy key (non-empty strings), got {bad}")
    unknown = [k for k in rename if k not in robot_keys]
    if unknown:
        raise KeyError(f"rename_map keys {unknown} are not observation keys of the robot; its observation keys: "
                       f"{robot_keys}")
    names = [rename.get(k, k) for k in robot_keys]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"rename_map {rename} gives several robot keys the same name {clashes} (robot observation "
                         f"keys: {robot_keys})")
    if policy_keys is not None:
        policy_keys = list(policy_keys)
        useless = [v for v in rename.values() if v not in policy_keys]
        if useless:
            raise ValueError(f"rename_map targets {useless} are not inputs of the policy; its inputs: {policy_keys}")
    return rename


def policy_sources(robot_keys: Iterable[str], rename_map: Mapping[str, str], wanted: Iterable[str]) -> dict[str, str]:
    """``{robot key: policy key}`` for every policy input ``wanted``, after ``rename_map`` (checked by
    :func:`check_rename_map`).

    Raises:
        KeyError: a policy input no robot key provides (names the missing inputs, the robot's keys as the policy
            sees them after renaming, and the rename map).
    """
    seen = {rename_map.get(k, k): k for k in robot_keys}
    wanted = list(wanted)
    missing = [k for k in wanted if k not in seen]
    if missing:
        raise KeyError(f"policy inputs {missing} are not provided by the robot (its observation keys after "
                       f"rename_map {dict(rename_map)}: {sorted(seen)}); map a robot key onto each with rename_map")
    return {seen[k]: k for k in wanted}
