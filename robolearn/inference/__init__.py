"""Async inference (Shukor et al. 2025, SmolVLA): a gRPC policy server predicting action chunks and a robot
client executing them from a queue at the robot's fps. Messages are msgpack + safetensors (never pickle).

Import the parts you need: ``robolearn.inference.server.PolicyServer``, ``robolearn.inference.client.RobotClient``,
``robolearn.inference.merge``, ``robolearn.inference.codec``.
"""
