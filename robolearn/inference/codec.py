"""Wire format of the async inference messages: msgpack, with tensors as safetensors bytes. Never pickle.

A message is a msgpack map ``{"v": WIRE_VERSION, "type": <str>, ...}`` whose values may be nested maps,
lists, strings, numbers, booleans, ``None`` and tensors. Every tensor (a ``torch.Tensor`` or a
``numpy.ndarray``, which is sent as a tensor) becomes a msgpack extension of type ``TENSOR_EXT`` whose
payload is a one-tensor safetensors file (``safetensors.torch.save({"t": tensor})``). Decoding parses only
msgpack and safetensors, neither of which can execute code, so a pickle payload is just malformed input.

Why not pickle (what lerobot's async inference sends): unpickling runs arbitrary code chosen by the peer.

Limits checked on decode: total size (``max_bytes``), the top level must be a map with the expected
version and type, map keys must be strings, and only the tensor extension type is accepted.
"""

from __future__ import annotations

from typing import Any, Mapping

import msgpack
import numpy as np
import torch

WIRE_VERSION = 1
TENSOR_EXT = 1
# Default cap on one encoded message (bytes): a few 480x640 RGB frames fit many times over.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class CodecError(ValueError):
    """A message could not be encoded or decoded: malformed, oversize, wrong version/type, or unsupported value."""


def _encode_tensor(t: torch.Tensor) -> msgpack.ExtType:
    from safetensors.torch import save

    t = t.detach().to("cpu").contiguous()
    return msgpack.ExtType(TENSOR_EXT, save({"t": t}))


def _default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return _encode_tensor(obj)
    if isinstance(obj, np.ndarray):
        return _encode_tensor(torch.from_numpy(np.ascontiguousarray(obj)))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise CodecError(f"cannot encode a value of type {type(obj).__name__}; allowed: dict, list, str, int, float, "
                     "bool, None, bytes, torch.Tensor, numpy.ndarray")


def _ext_hook(code: int, data: bytes) -> torch.Tensor:
    from safetensors.torch import load

    if code != TENSOR_EXT:
        raise CodecError(f"unknown msgpack extension type {code} (only {TENSOR_EXT} = safetensors tensor is accepted)")
    try:
        tensors = load(bytes(data))
    except Exception as e:  # safetensors raises its own error type for malformed payloads
        raise CodecError(f"tensor payload is not a valid safetensors buffer: {e}") from e
    if set(tensors) != {"t"}:
        raise CodecError(f"tensor payload must hold exactly one tensor named 't', got {sorted(tensors)}")
    return tensors["t"]


def encode(message: Mapping[str, Any], max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Serialize ``message`` (a map with a ``"type"`` string) to bytes, adding ``"v": WIRE_VERSION``.

    Tensors of any dtype safetensors supports (float16/32/64, bfloat16, int8..int64, uint8, bool) keep their
    dtype and shape; numpy arrays are sent as tensors (and decode as ``torch.Tensor``); tuples become lists.

    Raises:
        CodecError: ``message`` is not a map with a ``"type"`` string, holds an unsupported value, or the
            result is larger than ``max_bytes``.
    """
    if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
        raise CodecError(f"a message must be a mapping with a 'type' string, got {type(message).__name__}")
    try:
        data = msgpack.packb({**message, "v": WIRE_VERSION}, default=_default, use_bin_type=True, strict_types=False)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        raise CodecError(f"cannot encode message of type '{message['type']}': {e}") from e
    if len(data) > max_bytes:
        raise CodecError(f"encoded message '{message['type']}' is {len(data)} bytes, more than max_bytes={max_bytes}")
    return data


def decode(data: bytes, expected_type: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Parse bytes written by :func:`encode` back into a dict (tensors as CPU ``torch.Tensor``).

    Args:
        data: the encoded message.
        expected_type: when given, the message's ``"type"`` must equal it.
        max_bytes: refuse larger inputs before parsing.
    Raises:
        CodecError: oversize input, not msgpack (e.g. a pickle), trailing bytes, top level not a map, non-string
            map keys, a wrong wire version or type, an unknown extension, or an invalid tensor payload.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"message of {len(data)} bytes exceeds max_bytes={max_bytes}")
    try:
        message = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, ext_hook=_ext_hook)
    except CodecError:
        raise
    except Exception as e:  # msgpack raises ExtraData, FormatError, StackError, ValueError, TypeError ...
        raise CodecError(f"malformed message ({type(e).__name__}: {e}); expected msgpack written by "
                         "robolearn.inference.codec.encode") from e
    if not isinstance(message, dict):
        raise CodecError(f"a message must be a msgpack map, got {type(message).__name__}")
    if message.get("v") != WIRE_VERSION:
        raise CodecError(f"unsupported wire version {message.get('v')!r}; this side speaks v={WIRE_VERSION}")
    if expected_type is not None and message.get("type") != expected_type:
        raise CodecError(f"expected a '{expected_type}' message, got type {message.get('type')!r}")
    return message
