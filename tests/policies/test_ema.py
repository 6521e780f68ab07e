import pytest
import torch

from robolearn.callbacks import EMA, ema_decay


def test_decay_schedule():
    assert ema_decay(1) == 0.0  # first update copies
    assert ema_decay(2, power=0.75) == pytest.approx(1 - 2 ** -0.75)
    assert ema_decay(11, inv_gamma=2.0, power=0.5) == pytest.approx(1 - (1 + 10 / 2) ** -0.5)
    assert ema_decay(10**9) == 0.9999
    assert ema_decay(5, update_after_step=10) == 0.0


def test_update_and_swap_and_state_roundtrip():
    m = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema = EMA(power=1.0)
    ema.update(m)  # decay 0 -> copy
    torch.testing.assert_close(ema.shadow["weight"], torch.ones(1, 2))
    with torch.no_grad():
        m.weight.fill_(3.0)
    ema.update(m)  # step 2: decay = 1 - (1 + 1)^-1 = 0.5
    assert ema.decay == pytest.approx(0.5)
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 2.0))
    with ema.swapped(m):
        torch.testing.assert_close(m.weight, torch.full((1, 2), 2.0))
    torch.testing.assert_close(m.weight, torch.full((1, 2), 3.0))
    other = EMA()
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 2
    torch.testing.assert_close(other.shadow["weight"], ema.shadow["weight"])
