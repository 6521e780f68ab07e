"""Training-image augmentation (robolearn/augment.py, robolearn/datamodules/augmented.py, conf/augment/): seeded and
reproducible, training items only, shapes and dtypes kept, each transform within its configured bounds, windows
sharing parameters, the Hydra group, the preview command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from robolearn.augment import TRANSFORMS, ImageAugment, augment_item, sample_generator
from robolearn.datamodules.augmented import (AugmentedDataset, AugmentedIterable, EpochCountingSampler,
                                             EpochTaggedSampler, build_augment)
from robolearn.datamodules.lerobot import LeRobotDataModule
from robolearn.datamodules.sampler import EpochShuffleSampler

REPO = Path(__file__).resolve().parents[2]
CAM = "observation.image"


def _frames(*shape, seed=0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _only(kind: str, **params) -> ImageAugment:
    return ImageAugment({kind: {"weight": 1.0, **params}}, max_num_transforms=1)


def _plans(aug: ImageAugment, n: int, size=(12, 16)):
    return [aug.sample(sample_generator(0, 0, i), size) for i in range(n)]


# ---------------------------------------------------------------------------------------------- reproducibility
def test_same_seed_epoch_index_gives_the_same_pixels_and_any_change_other_pixels():
    aug = ImageAugment()  # lerobot's defaults
    x = _frames(3, 12, 16)
    ref = aug(x, sample_generator(7, 2, 5, CAM))
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(aug(x, sample_generator(7, 2, 5, CAM)), ref)
    for other in [(8, 2, 5, CAM), (7, 3, 5, CAM), (7, 2, 6, CAM), (7, 2, 5, "observation.images.wrist")]:
        assert not torch.equal(aug(x, sample_generator(*other)), ref), other


def test_augmented_dataset_keys_by_epoch_and_index_and_each_camera_differs():
    x = _frames(3, 12, 16)
    items = [{CAM: x.clone(), "cam2": x.clone(), "action": torch.zeros(2)} for _ in range(4)]
    ds = AugmentedDataset(items, ImageAugment(), [CAM, "cam2"], seed=0)
    a, b = ds[(0, 1)], ds[(0, 1)]
    assert torch.equal(a[CAM], b[CAM]) and torch.equal(a["action"], items[1]["action"])
    assert not torch.equal(a[CAM], a["cam2"])  # per-camera parameters
    assert not torch.equal(ds[(1, 1)][CAM], a[CAM]) and not torch.equal(ds[(0, 2)][CAM], a[CAM])
    assert torch.equal(items[1][CAM], x)  # the underlying item is not modified


def test_samplers_tag_indices_with_their_epoch():
    s = EpochTaggedSampler(5, seed=3)
    first, second = list(s), list(s)
    assert {e for e, _ in first} == {0} and {e for e, _ in second} == {1}
    plain = EpochShuffleSampler(5, seed=3)  # same order
    assert [i for _, i in first] == list(plain) and [i for _, i in second] == list(plain)
    s2 = EpochTaggedSampler(5, seed=3)
    s2.load_state_dict({"epoch": 1, "yielded": 2})  # a resumed run continues epoch 1 where it stopped
    assert list(s2) == second[2:]
    c = EpochCountingSampler(range(3))
    assert list(c) == [(0, 0), (0, 1), (0, 2)] and list(c) == [(1, 0), (1, 1), (1, 2)] and len(c) == 3


def test_streaming_items_are_keyed_by_the_datasets_epoch_and_frame_index():
    class Stream(torch.utils.data.IterableDataset):
        epoch = 0

        def __iter__(self):
            self.epoch += 1
            for i in (4, 9):
                yield {CAM: _frames(3, 8, 8, seed=i), "index": torch.tensor(i)}

    aug = ImageAugment()
    wrapped = AugmentedIterable(Stream(), aug, [CAM], seed=1)
    e0, e1 = list(wrapped), list(wrapped)
    expected = aug(_frames(3, 8, 8, seed=9), sample_generator(1, 0, 9, CAM))
    assert torch.equal(e0[1][CAM], expected)
    assert torch.equal(e1[1][CAM], aug(_frames(3, 8, 8, seed=9), sample_generator(1, 1, 9, CAM)))


# ---------------------------------------------------------------------------------------------- shapes, windows
@pytest.mark.parametrize("shape, dtype", [((3, 12, 16), torch.float32), ((4, 3, 12, 16), torch.float32),
                                          ((1, 12, 16), torch.float32), ((3, 12, 16), torch.uint8)])
def test_every_transform_keeps_shape_dtype_and_range(shape, dtype):
    aug = ImageAugment({k: {"weight": 1.0, "always": True} for k in TRANSFORMS})
    x = _frames(*shape)
    x = (x * 255).to(torch.uint8) if dtype == torch.uint8 else x
    for i in range(5):
        y = aug(x, sample_generator(0, 0, i))
        assert y.shape == x.shape and y.dtype == x.dtype
        if dtype.is_floating_point:
            assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_the_frames_of_a_window_share_the_parameters():
    aug = ImageAugment({k: {"weight": 1.0, "always": True} for k in TRANSFORMS})
    frame = _frames(3, 12, 16)
    same = aug(frame.expand(3, 3, 12, 16).clone(), sample_generator(0, 0, 1))
    assert torch.equal(same[0], same[1]) and torch.equal(same[0], same[2])
    window = _frames(3, 3, 12, 16, seed=1)
    plan = aug.sample(sample_generator(0, 0, 1), (12, 16))
    out = aug.apply(window, plan)
    for t in range(3):
        torch.testing.assert_close(out[t], aug.apply(window[t], plan))


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"):
        ImageAugment()(torch.rand(12, 16))
    with pytest.raises(ValueError, match="int64"):
        ImageAugment()(torch.zeros(3, 12, 16, dtype=torch.int64))


# ---------------------------------------------------------------------------------------------- bounds
def test_brightness_scales_the_mean_by_a_factor_within_its_range():
    x = torch.full((3, 12, 16), 0.4) + 0.1 * _frames(3, 12, 16)  # no clamping at 1.3x
    aug = _only("brightness", range=[0.7, 1.3])
    ratios = [float(aug(x, sample_generator(0, 0, i)).mean() / x.mean()) for i in range(40)]
    assert all(0.7 - 1e-5 <= r <= 1.3 + 1e-5 for r in ratios)
    assert max(ratios) - min(ratios) > 0.3  # it varies across samples


def test_contrast_scales_the_spread_and_saturation_the_colour_within_range():
    x = 0.4 + 0.2 * _frames(3, 12, 16)
    aug = _only("contrast", range=[0.8, 1.2])
    for i in range(20):
        r = float(aug(x, sample_generator(0, 0, i)).std() / x.std())
        assert 0.8 - 1e-4 <= r <= 1.2 + 1e-4
    gray = x[:1].expand(3, 12, 16).clone()
    sat = _only("saturation", range=[0.5, 1.5])
    torch.testing.assert_close(sat(gray, sample_generator(0, 0, 0)), gray, atol=1e-4, rtol=0)  # no colour
    lum = (0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2])
    for i in range(20):
        y = sat(x, sample_generator(0, 0, i))
        r = float((y - lum).norm() / (x - lum).norm())
        assert 0.5 - 1e-4 <= r <= 1.5 + 1e-4


def test_hue_and_sharpness_factors_stay_in_range_and_leave_what_they_cannot_change():
    for kind, key, lo, hi in [("hue", "hue", -0.05, 0.05), ("sharpness", "factor", 0.5, 1.5),
                              ("brightness", "factor", 0.8, 1.2), ("saturation", "factor", 0.5, 1.5)]:
        values = [p[0][1][key] for p in _plans(_only(kind, range=[lo, hi]), 100)]
        assert lo <= min(values) and max(values) <= hi and max(values) - min(values) > (hi - lo) / 2, kind
    flat = torch.full((3, 12, 16), 0.3)
    torch.testing.assert_close(_only("sharpness", range=[0.0, 2.0])(flat, sample_generator(0, 0, 0)), flat)
    gray = _frames(1, 12, 16).expand(3, 12, 16).clone()
    torch.testing.assert_close(_only("hue", range=[-0.5, 0.5])(gray, sample_generator(0, 0, 0)), gray,
                               atol=1e-5, rtol=0)


def test_shift_moves_the_content_by_at_most_pad_pixels():
    pad, h, w = 3, 12, 16
    x = torch.zeros(1, h, w)
    x[0, 6, 8] = 1.0
    aug = _only("shift", pad=pad)
    moves = set()
    for i in range(150):
        y = aug(x, sample_generator(0, 0, i))
        (yy, xx), = (y[0] == 1.0).nonzero().tolist()
        moves.add((yy - 6, xx - 8))
        assert abs(yy - 6) <= pad and abs(xx - 8) <= pad
    assert {m[0] for m in moves} == set(range(-pad, pad + 1)) and {m[1] for m in moves} == set(range(-pad, pad + 1))
    ramp = torch.arange(w, dtype=torch.float32).expand(1, h, w) / w  # edges repeated, not zero
    y = aug.apply(ramp, [("shift", {"dy": 0, "dx": 2})])
    torch.testing.assert_close(y[..., :-2], ramp[..., 2:])
    torch.testing.assert_close(y[..., -2:], ramp[..., -1:].expand(1, h, 2))


def test_affine_and_resized_crop_parameters_stay_within_bounds():
    for _, p in (plan[0] for plan in _plans(_only("affine", degrees=[-5, 5], translate=[0.25, 0.1]), 100)):
        assert -5 <= p["angle"] <= 5 and abs(p["translate"][0]) <= 0.25 * 16 and abs(p["translate"][1]) <= 0.1 * 12
    for _, p in (plan[0] for plan in _plans(_only("resized_crop", scale=[0.5, 0.9], ratio=[0.75, 1.333]), 100)):
        assert 0 <= p["top"] and p["top"] + p["height"] <= 12 and 0 <= p["left"] and p["left"] + p["width"] <= 16
        assert 0.4 <= p["height"] * p["width"] / (12 * 16) <= 1.0


def test_a_random_subset_of_max_num_transforms_in_configured_order_plus_the_always_ones():
    aug = ImageAugment({"brightness": {}, "contrast": {}, "hue": {"weight": 0.0}, "saturation": {},
                        "sharpness": {"weight": 3.0}, "shift": {"always": True}}, max_num_transforms=2)
    order = list(aug.transforms)
    counts = {k: 0 for k in order}
    for plan in _plans(aug, 200):
        names = [n for n, _ in plan]
        assert "shift" in names and len(names) == 3 and "hue" not in names
        assert names == sorted(names, key=order.index)
        for n in names:
            counts[n] += 1
    assert counts["sharpness"] > counts["brightness"]  # weight 3 vs 1
    assert not ImageAugment({"brightness": {"weight": 0}}).active and build_augment({"transforms": {
        "brightness": {"weight": 0}}}) is None


@pytest.mark.parametrize("kwargs, message", [
    ({"max_num_transforms": 0}, r"augment\.max_num_transforms must be an integer >= 1, got 0"),
    ({"transforms": {"brightness": {"range": [1.2, 0.8]}}}, r"augment\.transforms\.brightness\.range .*low <= high"),
    ({"transforms": {"brightness": {"range": [-0.1, 1.0]}}}, r"brightness\.range must lie in \[0\.0, inf\]"),
    ({"transforms": {"hue": {"range": [-0.6, 0.0]}}}, r"augment\.transforms\.hue\.range must lie in \[-0\.5, 0\.5\]"),
    ({"transforms": {"contrast": {"weight": -1}}}, r"augment\.transforms\.contrast\.weight .*got -1"),
    ({"transforms": {"shift": {"pad": 2.5}}}, r"augment\.transforms\.shift\.pad must be an integer >= 0.*2\.5"),
    ({"transforms": {"blur": {}}}, r"augment\.transforms\.blur: unknown transform 'blur'"),
    ({"transforms": {"shift": {"pda": 1}}}, r"augment\.transforms\.shift: unknown parameter\(s\) \['pda'\]"),
    ({"transforms": {"resized_crop": {"scale": [0.0, 1.0]}}}, r"resized_crop\.scale must be > 0"),
    ({"transforms": {"affine": {"degrees": "5"}}}, r"affine\.degrees must be a pair of numbers"),
])
def test_bad_config_values_raise_naming_the_key_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageAugment(**kwargs)


# ---------------------------------------------------------------------------------------------- DataModule
@pytest.fixture()
def pusht_root(shared_datasets):
    return shared_datasets / "lerobot_written_pusht_random"


def _dm(root, **kw):
    kw = {"num_workers": 0, "batch_size": 4, "val_fraction": 0.2, "seed": 3, **kw}
    return LeRobotDataModule(repo_id="t/pusht", root=root, **kw)


def test_train_batches_are_augmented_validation_batches_are_not(pusht_root):
    plain, aug = _dm(pusht_root), _dm(pusht_root, augment={"max_num_transforms": 2})
    assert isinstance(aug.augment, ImageAugment) and aug.camera_keys == [CAM]
    p, a = next(iter(plain.train_dataloader())), next(iter(aug.train_dataloader()))
    assert torch.equal(p["index"], a["index"])  # same shuffle
    assert a[CAM].shape == p[CAM].shape == (4, 3, 96, 96) and a[CAM].dtype == torch.float32
    assert all(not torch.equal(a[CAM][i], p[CAM][i]) for i in range(4))
    assert torch.equal(a["action"], p["action"])  # only cameras change
    pv, av = next(iter(plain.val_dataloader())), next(iter(aug.val_dataloader()))
    assert torch.equal(pv[CAM], av[CAM])
    item = aug.train_dataset[0]  # the dataset itself stays unaugmented (the loader wraps it)
    assert torch.equal(item[CAM], plain.train_dataset[0][CAM])


def test_augmented_batches_do_not_depend_on_the_number_of_workers(pusht_root):
    batches = []
    for workers in (0, 2):
        dm = _dm(pusht_root, num_workers=workers, persistent_workers=False, augment={})
        dm.set_delta_indices({CAM: [-1, 0]})
        batches.append(next(iter(dm.train_dataloader())))
    assert batches[0][CAM].shape == (4, 2, 3, 96, 96)
    assert torch.equal(batches[0]["index"], batches[1]["index"]) and torch.equal(batches[0][CAM], batches[1][CAM])


# ---------------------------------------------------------------------------------------------- config, preview
def _compose(overrides: list[str], tmp_path: Path):
    from robolearn.utils.schema import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", f"paths.root_dir={tmp_path}", *overrides],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_augment_group_composes_and_reaches_the_datamodule(tmp_path, pusht_root):
    sys.path.insert(0, str(REPO))
    import train as train_script

    assert _compose([], tmp_path).augment is None  # default: none
    data = ["dataset=local", f"dataset.root={pusht_root}", "dataset.num_workers=0"]
    cfg = _compose(["augment=default", "augment.max_num_transforms=2", *data], tmp_path)
    dm = train_script.build_datamodule(cfg)
    assert dm.augment.max_num_transforms == 2 and dm.augment.transforms["saturation"]["range"] == (0.5, 1.5)
    assert {n for n, t in dm.augment.transforms.items() if t["weight"] > 0} == {
        "brightness", "contrast", "saturation", "hue", "sharpness", "affine"}
    assert train_script.build_datamodule(_compose(data, tmp_path)).augment is None
    shift = instantiate(_compose(["augment=shift"], tmp_path).augment, _convert_="all")
    assert [n for n, t in shift.transforms.items() if t["weight"] > 0] == ["shift"]
    assert shift.transforms["shift"]["always"] and shift.transforms["shift"]["pad"] == 4
    with pytest.raises(InstantiationException, match="augment.max_num_transforms must be an integer >= 1, got 0"):
        train_script.build_datamodule(_compose(["augment=default", "augment.max_num_transforms=0", *data], tmp_path))
    with pytest.raises(ValueError, match="takes no `augment` argument"):
        train_script.build_datamodule(_compose(["augment=shift", "dataset=planar_reach_online"], tmp_path))
    GlobalHydra.instance().clear()


def test_preview_writes_a_png_grid(tmp_path, pusht_root):
    from PIL import Image

    from robolearn.tools.augment_preview import main

    out = main([str(pusht_root), "--augment", "shift", "--override", "transforms.shift.pad=8", "--n", "2",
                "--rows", "2", "--seed", "1", "--out", str(tmp_path / "grid.png")])
    img = Image.open(out)
    assert img.size == (3 * (96 + 2), 2 * (96 + 2)) and img.mode == "RGB"
    with pytest.raises(ValueError, match="no augmentation"):
        main([str(pusht_root), "--augment", "none", "--out", str(tmp_path / "none.png")])


def test_augment_item_skips_missing_cameras():
    item = {"a": torch.rand(3, 8, 8)}
    assert augment_item(ImageAugment(), item, ["b"], 0, 0, 0) == item
