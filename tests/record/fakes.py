"""Fakes shared by the recording and deployment tests."""

from __future__ import annotations


class FakeRobot:
    """A state-only fake robot: state = number of actions received; presses keys at given steps."""

    name = "fake"
    task = "fake task"

    def __init__(self, keys=None, events=None):
        self.n, self.keys, self.events, self.sent, self.is_connected = 0, keys or {}, events, [], False

    action_features = property(lambda self: {"x": float, "y": float})
    observation_features = property(lambda self: {"s": float})

    def connect(self):
        self.is_connected = True

    def disconnect(self):
        self.is_connected = False

    def reset(self, seed=None):
        self.n = 0
        return self.get_observation()

    def get_observation(self):
        return {"s": float(self.n)}

    def send_action(self, action):
        self.sent.append(dict(action))
        self.n += 1
        if self.n in self.keys:
            self.events.press(self.keys[self.n])
        return dict(action)
