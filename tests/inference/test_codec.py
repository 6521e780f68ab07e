import pickle

import msgpack
import numpy as np
import pytest
import torch

from robolearn.inference.codec import TENSOR_EXT, CodecError, decode, encode


def test_round_trip_nested_dict_of_tensors_of_several_dtypes():
    g = torch.Generator().manual_seed(0)
    msg = {
        "type": "observation",
        "timestep": 7,
        "timestamp": 1.25,
        "task": "pick the cube",
        "none": None,
        "observation": {
            "observation.state": torch.randn(6, generator=g),
            "observation.images.front": torch.randint(0, 256, (4, 5, 3), dtype=torch.uint8, generator=g),
            "nested": {"f64": torch.randn(2, 3, dtype=torch.float64, generator=g),
                       "f16": torch.randn(3, generator=g).half(),
                       "bf16": torch.randn(3, generator=g).bfloat16(),
                       "i64": torch.arange(-3, 3),
                       "i32": torch.arange(4, dtype=torch.int32),
                       "bool": torch.tensor([True, False, True]),
                       "scalar": torch.tensor(3.5)},
            "list": [torch.ones(2), 3, "x"],
        },
        "numpy": np.arange(6, dtype=np.int16).reshape(2, 3),
    }
    out = decode(encode(msg), expected_type="observation")
    assert out["v"] == 1 and out["timestep"] == 7 and out["timestamp"] == 1.25 and out["task"] == "pick the cube"
    assert out["none"] is None

    def check(a, b):
        assert isinstance(b, torch.Tensor) and b.dtype == a.dtype and b.shape == a.shape
        assert torch.equal(a, b)

    o, m = out["observation"], msg["observation"]
    check(m["observation.state"], o["observation.state"])
    check(m["observation.images.front"], o["observation.images.front"])
    for k, v in m["nested"].items():
        check(v, o["nested"][k])
    check(m["list"][0], o["list"][0])
    assert o["list"][1:] == [3, "x"]
    check(torch.from_numpy(msg["numpy"]), out["numpy"])  # numpy arrays arrive as tensors


def test_non_contiguous_tensor_round_trips():
    t = torch.arange(12.0).reshape(3, 4).t()
    assert torch.equal(decode(encode({"type": "x", "t": t}))["t"], t)


def test_pickle_payloads_are_never_accepted():
    obj = {"type": "observation", "v": 1, "observation": {"x": torch.ones(2)}}
    with pytest.raises(CodecError, match="malformed"):
        decode(pickle.dumps(obj))
    with pytest.raises(CodecError, match="malformed"):
        decode(pickle.dumps(obj, protocol=0))
    # a pickle smuggled as a "tensor" extension is rejected by the safetensors parser
    evil = msgpack.packb({"type": "observation", "v": 1, "t": msgpack.ExtType(TENSOR_EXT, pickle.dumps(torch.ones(2)))})
    with pytest.raises(CodecError, match="safetensors"):
        decode(evil)
    # other extension types are refused
    other = msgpack.packb({"type": "observation", "v": 1, "t": msgpack.ExtType(42, b"abc")})
    with pytest.raises(CodecError, match="extension type 42"):
        decode(other)


def test_malformed_and_oversize_messages_raise_clear_errors():
    with pytest.raises(CodecError, match="max_bytes"):
        decode(encode({"type": "x", "t": torch.zeros(1000)}), max_bytes=100)
    with pytest.raises(CodecError, match="max_bytes"):
        encode({"type": "x", "t": torch.zeros(1000)}, max_bytes=100)
    with pytest.raises(CodecError, match="msgpack map"):
        decode(msgpack.packb([1, 2, 3]))
    with pytest.raises(CodecError, match="wire version"):
        decode(msgpack.packb({"type": "x", "v": 99}))
    with pytest.raises(CodecError, match="expected a 'actions' message"):
        decode(encode({"type": "x"}), expected_type="actions")
    with pytest.raises(CodecError, match="malformed"):
        decode(encode({"type": "x"})[:-1] + b"\xc1")  # 0xc1 is never used by msgpack
    with pytest.raises(CodecError, match="malformed"):
        decode(msgpack.packb({1: 2}))  # non-string map key
    with pytest.raises(CodecError, match="bytes"):
        decode("not bytes")
    with pytest.raises(CodecError, match="cannot encode a value of type object"):
        encode({"type": "x", "o": object()})
    with pytest.raises(CodecError, match="'type' string"):
        encode({"no_type": 1})
