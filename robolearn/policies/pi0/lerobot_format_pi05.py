"""lerobot ``pi05`` checkpoints <-> robolearn :class:`Pi05Policy`; the same maps as ``pi0``
(:mod:`robolearn.policies.pi0.lerobot_format`) with the π0.5 class and type.

lerobot's loader convention imports ``robolearn.policies.<type>.lerobot_format``, i.e.
``robolearn.policies.pi05.lerobot_format`` for ``"type": "pi05"``; that module re-exports this one.
"""

from __future__ import annotations

from typing import Any, Mapping

from robolearn.features import PolicyFeature
from robolearn.policies.pi0 import lerobot_format as _pi0
from robolearn.policies.pi0.module import Pi05Policy

LEROBOT_TYPE = "pi05"
POLICY_CLASS = Pi05Policy
state_dict_from_lerobot = _pi0.state_dict_from_lerobot
state_dict_to_lerobot = _pi0.state_dict_to_lerobot


def kwargs_from_lerobot_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``Pi05Policy`` kwargs from a lerobot ``pi05`` ``config.json`` (errors as for ``pi0``)."""
    return _pi0.kwargs_from_lerobot_config(config, LEROBOT_TYPE)


def lerobot_config_from_kwargs(kwargs: Mapping[str, Any], features: Mapping[str, PolicyFeature]) -> dict[str, Any]:
    """A lerobot ``pi05`` ``config.json`` dict from ``Pi05Policy`` kwargs."""
    return _pi0.lerobot_config_from_kwargs(kwargs, features, LEROBOT_TYPE)
