"""Lightning callbacks: weight EMA and pretrained-folder export."""

from robolearn.callbacks.ema import EMA, ema_decay
from robolearn.callbacks.export import ExportPretrained

__all__ = ["EMA", "ExportPretrained", "ema_decay"]
