import numpy as np
import pytest
import torch

from robolearn.features import FeatureType as FT
from robolearn.features import NormalizationMode as NM
from robolearn.features import PolicyFeature
from robolearn.policies.normalize import IMAGENET_MEAN, Normalizer

F = {
    "observation.image": PolicyFeature(FT.VISUAL, (3, 4, 5)),
    "observation.state": PolicyFeature(FT.STATE, (2,)),
    "action": PolicyFeature(FT.ACTION, (2,)),
}
S = {
    "observation.image": {"mean": np.array([0.1, 0.2, 0.3]).reshape(3, 1, 1), "std": np.array([0.5, 1.0, 2.0]).reshape(3, 1, 1)},
    "observation.state": {"min": np.array([0.0, 1.0]), "max": np.array([2.0, 1.0])},  # second dim: zero range
    "action": {"mean": np.array([1.0, -1.0]), "std": np.array([2.0, 4.0]), "min": np.zeros(2), "max": np.ones(2)},
}
MAP = {FT.VISUAL: NM.MEAN_STD, FT.STATE: NM.MIN_MAX, FT.ACTION: NM.MEAN_STD}


def test_values_match_hand_computation_and_round_trip():
    n = Normalizer(F, S, MAP)
    img = torch.rand(2, 7, 3, 4, 5)
    state = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    act = torch.tensor([[3.0, 3.0]])
    out = n.normalize({"observation.image": img, "observation.state": state, "action": act, "index": 5})
    mean = torch.tensor([0.1, 0.2, 0.3]).reshape(3, 1, 1)
    std = torch.tensor([0.5, 1.0, 2.0]).reshape(3, 1, 1)
    torch.testing.assert_close(out["observation.image"], (img - mean) / (std + 1e-8))
    # min-max to [-1, 1]; zero range replaced by 1e-8
    torch.testing.assert_close(out["observation.state"], torch.tensor([[0.0, 2 * 0 / 1e-8 - 1], [1.0, 2 * 2 / 1e-8 - 1]]))
    torch.testing.assert_close(out["action"], torch.tensor([[(3 - 1) / (2 + 1e-8), (3 + 1) / (4 + 1e-8)]]))
    assert out["index"] == 5
    back = n.unnormalize(out)
    torch.testing.assert_close(back["observation.image"], img, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(back["action"], act)
    torch.testing.assert_close(back["observation.state"][:, 0], state[:, 0])


def test_missing_stats_key_and_stat_raise_keyerror():
    with pytest.raises(KeyError, match="observation.state"):
        Normalizer(F, {k: v for k, v in S.items() if k != "observation.state"}, MAP)
    bad = dict(S, action={"mean": np.zeros(2)})
    with pytest.raises(KeyError, match=r"'std'.*'action'"):
        Normalizer(F, bad, MAP)


def test_identity_needs_no_stats_and_buffers_in_state_dict():
    n = Normalizer(F, {"action": S["action"]}, {FT.ACTION: NM.MIN_MAX})
    x = torch.randn(3, 2)
    assert n.normalize_tensor("observation.state", x) is x
    keys = set(n.state_dict())
    assert keys == {"stats.action.min", "stats.action.max"}


def test_placeholders_raise_until_loaded_and_imagenet_flag():
    n = Normalizer(F, None, MAP)
    with pytest.raises(RuntimeError, match="never set"):
        n.normalize_tensor("action", torch.zeros(2))
    n.load_state_dict(Normalizer(F, S, MAP).state_dict())
    n.normalize_tensor("action", torch.zeros(2))
    m = Normalizer(F, S, MAP, use_imagenet_stats=True)
    torch.testing.assert_close(m.stats["observation_image"].mean.flatten(), torch.tensor(IMAGENET_MEAN))
