"""Online RL inside Lightning: replay buffers, the env actor and the online data module (HIL-SERL / RLPD style)."""

from robolearn.rl.actor import EnvActor, EpisodeStats
from robolearn.rl.augment import random_shift
from robolearn.rl.datamodule import OnlineRLDataModule
from robolearn.rl.offline import buffer_from_dataset, dataset_transitions
from robolearn.rl.replay import MixedReplayBuffer, ReplayBuffer

__all__ = ["EnvActor", "EpisodeStats", "MixedReplayBuffer", "OnlineRLDataModule", "ReplayBuffer",
           "buffer_from_dataset", "dataset_transitions", "random_shift"]
