import pytest
import torch

from robolearn.inference.action_queue import TimedActionQueue
from robolearn.inference.merge import MERGE_FUNCTIONS, get_merge_fn

OLD = torch.tensor([1.0, -2.0, 10.0])
NEW = torch.tensor([3.0, 2.0, 0.0])


@pytest.mark.parametrize("name, expected", [
    ("weighted_average", [0.3 * 1 + 0.7 * 3, 0.3 * -2 + 0.7 * 2, 3.0]),  # [2.4, 0.8, 3.0]
    ("latest_only", [3.0, 2.0, 0.0]),
    ("average", [2.0, 0.0, 5.0]),
    ("conservative", [0.7 * 1 + 0.3 * 3, 0.7 * -2 + 0.3 * 2, 7.0]),  # [1.6, -0.8, 7.0]
])
def test_merge_functions_hand_computed(name, expected):
    torch.testing.assert_close(get_merge_fn(name)(OLD, NEW), torch.tensor(expected))


def test_unknown_merge_name_lists_choices():
    with pytest.raises(ValueError, match="unknown aggregate_fn_name 'median'.*average"):
        get_merge_fn("median")
    assert set(MERGE_FUNCTIONS) == {"weighted_average", "latest_only", "average", "conservative"}


def test_queue_drops_past_merges_overlap_appends_new():
    q = TimedActionQueue(get_merge_fn("average"))
    q.merge_chunk([0, 1, 2, 3], torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    assert q.pop()[0] == 0 and q.pop()[0] == 1 and q.next_timestep == 2
    # chunk predicted from the observation at timestep 1 arrives late: timestep 1 already executed
    counts = q.merge_chunk(torch.tensor([1, 2, 3, 4, 5]), torch.tensor([[11.0], [12.0], [13.0], [14.0], [15.0]]))
    assert counts == {"dropped": 1, "merged": 2, "added": 2}
    ts, actions = q.snapshot()
    assert ts == [2, 3, 4, 5]
    torch.testing.assert_close(actions, torch.tensor([[7.0], [8.0], [14.0], [15.0]]))  # (2+12)/2, (3+13)/2
    assert len(q) == 4
    q.clear()
    assert len(q) == 0 and q.pop() is None and q.next_timestep == 0


def test_queue_rejects_mismatched_chunk():
    q = TimedActionQueue(get_merge_fn("latest_only"))
    with pytest.raises(ValueError, match="shape"):
        q.merge_chunk([0, 1], torch.zeros(3, 2))
