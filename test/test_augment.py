"""Paired augmentation keeps modalities and labels aligned; corruptions do what they say."""
from __future__ import annotations

import pytest
import torch

from rmmss_core.data import corruptions as C
from rmmss_core.data.augment import (
    PhotometricJitter,
    RandomHorizontalFlip,
    RandomResizedCrop,
    train_transform,
)
from rmmss_core.spec import PreprocessSpec


def coords_sample(H=20, W=30):
    """Every modality and the label encode the pixel position, so alignment is checkable."""
    rows = torch.arange(H)[:, None].expand(H, W)
    cols = torch.arange(W)[None, :].expand(H, W)
    label = (rows * W + cols) % 250
    img = torch.stack([rows / H, cols / W, torch.zeros(H, W)]).float()
    return {"rgb": img.clone(), "depth": img.clone(), "event": img.clone(), "lidar": None, "label": label}


def test_random_resized_crop_is_paired_and_pads_with_ignore():
    g = torch.Generator().manual_seed(3)
    t = RandomResizedCrop((16, 16), scale=(0.5, 0.5), generator=g)
    d = coords_sample()
    out = t(d)
    assert out["lidar"] is None
    for m in ("rgb", "depth", "event"):
        assert out[m].shape == (3, 16, 16)
    # factor 0.5 * min(16/20, 16/30) = 0.267 -> 20 x 30 rescaled to 5 x 8, the rest padded
    assert (out["label"][:5, :8] != 255).all()
    pad = torch.ones(16, 16, dtype=torch.bool)
    pad[:5, :8] = False
    assert (out["label"][pad] == 255).all() and (out["depth"][:, pad] == 0).all()
    # nearest modalities and the label come from the same source pixels
    valid = out["label"] != 255
    src = (out["depth"][0] * 20).round().long() * 30 + (out["depth"][1] * 30).round().long()
    assert torch.equal(src[valid] % 250, out["label"][valid])
    assert torch.equal(out["depth"], out["event"])


def test_crop_larger_scale_crops_inside_the_image():
    g = torch.Generator().manual_seed(0)
    out = RandomResizedCrop((10, 10), scale=(2.0, 2.0), generator=g)(coords_sample())
    assert out["label"].shape == (10, 10) and (out["label"] != 255).all()


def test_flip_flips_everything_and_jitter_touches_rgb_only():
    d = coords_sample()
    out = RandomHorizontalFlip(p=1.0)(d)
    assert torch.equal(out["label"], d["label"].flip(-1)) and torch.equal(out["event"], d["event"].flip(-1))
    assert RandomHorizontalFlip(p=0.0)(d) is d
    j = PhotometricJitter(brightness=0.5, contrast=0.5, saturation=0.5, p=1.0,
                          generator=torch.Generator().manual_seed(1))(d)
    assert not torch.equal(j["rgb"], d["rgb"]) and 0 <= j["rgb"].min() and j["rgb"].max() <= 1
    assert torch.equal(j["depth"], d["depth"]) and torch.equal(j["label"], d["label"])


def test_train_transform_output_size():
    out = train_transform((8, 12), generator=torch.Generator().manual_seed(0))(coords_sample())
    assert out["rgb"].shape == (3, 8, 12) and out["label"].shape == (8, 12)


def test_zero_dropout_salt_pepper_noise():
    x = torch.full((2, 3, 40, 50), 0.5)
    g = torch.Generator().manual_seed(0)
    assert C.zero(x).abs().sum() == 0
    d = C.element_dropout(x, 0.3, generator=g)
    assert abs((d == 0).float().mean().item() - 0.3) < 0.03 and set(d.unique().tolist()) == {0.0, 0.5}
    dp = C.element_dropout(x, 0.3, per_pixel=True, generator=g)
    assert ((dp == 0).all(dim=1) | (dp != 0).all(dim=1)).all()
    sp = C.salt_and_pepper(x, 0.2, generator=g)
    assert abs((sp[:, 0] == 0).float().mean().item() - 0.1) < 0.02
    assert abs((sp[:, 0] == 1).float().mean().item() - 0.1) < 0.02
    n = C.gaussian_noise(x, 0.1, generator=g)
    assert abs((n - x).std().item() - 0.1) < 0.01 and n.min() >= 0 and n.max() <= 1
    assert torch.equal(x, torch.full((2, 3, 40, 50), 0.5))  # inputs untouched
    with pytest.raises(ValueError, match="ratio"):
        C.element_dropout(x, 1.5)
    with pytest.raises(ValueError, match="3 x H x W"):
        C.zero(torch.zeros(4, 5))


def test_failure_cases():
    rgb = torch.zeros(3, 9, 21)
    rgb[:, 4, 10] = 1.0
    blur = C.motion_blur(rgb, kernel_size=5)
    assert torch.allclose(blur[0, 4, 8:13], torch.full((5,), 0.2)) and blur[0, 3].sum() == 0
    assert C.overexposure(torch.full((3, 2, 2), 0.6)).max() == 1.0
    dark = C.underexposure(torch.linspace(0, 1, 48).reshape(3, 4, 4))
    assert dark.max() <= 0.16 and (dark * 255 - (dark * 255).round()).abs().max() < 1e-4
    lidar = torch.zeros(3, 30, 30)
    lidar[:, 10:20:3, 10:20:3] = torch.rand(3, 4, 4) + 0.1
    j = C.lidar_jitter(lidar, max_shift_px=2, generator=torch.Generator().manual_seed(0))
    assert (j.abs().sum(0) > 0).sum() == 16 and not torch.equal(j, lidar)
    assert torch.allclose(j.sum(dim=(1, 2)), lidar.sum(dim=(1, 2)))
    ev = torch.zeros(3, 8, 8)
    ev[0, 0, 0] = 1.0
    low = C.event_low_res(ev, factor=4)
    assert torch.allclose(low[0, :4, :4], torch.full((4, 4), 1 / 16)) and low[0, 4:].sum() == 0
    out = C.apply_failure_case({"rgb": rgb * 0.2, "lidar": None}, "overexposure")
    assert out["lidar"] is None and out["rgb"].max() == pytest.approx(0.5, abs=1 / 255)
    with pytest.raises(KeyError, match="known"):
        C.apply_failure_case({}, "snow")


def test_in_encoded_space_round_trip():
    spec = PreprocessSpec()
    x = torch.rand(3, 6, 7)
    xn = (x - torch.tensor(spec.normalization["rgb"].mean)[:, None, None]) / \
        torch.tensor(spec.normalization["rgb"].std)[:, None, None]
    out = C.in_encoded_space(xn, "rgb", spec, C.zero)
    assert torch.allclose(out[0], torch.full((6, 7), -0.485 / 0.229))


def _sparse_lidar(H=40, W=60, density=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    hit = torch.rand(H, W, generator=g) < density
    img = torch.rand(3, H, W, generator=g) * 0.9 + 0.05
    return img * hit


def test_random_scale_shrinks_lidar_like_serving_nearest_return():
    """#12 follow-up: augmentation used plain nearest on LiDAR, so a random downscale dropped ~3/4 of
    the returns that serving (spec lidar.resample = nearest_return) keeps: training saw sparser
    LiDAR than the node feeds. Now the same density-preserving reduction, nearest range wins."""
    from rmmss_core.preprocess import reduce_nearest_return, resize
    from rmmss_core.spec import LidarEncoding

    lidar = _sparse_lidar()
    d = {**coords_sample(40, 60), "lidar": lidar}
    out = RandomResizedCrop((20, 30), scale=(1.0, 1.0), generator=torch.Generator().manual_seed(0))(d)
    # factor min(20/40, 30/60) = 0.5: the whole image rescaled to 20 x 30, no crop, no pad
    want = reduce_nearest_return(lidar, (20, 30), key=0)  # channel 0 = range
    assert torch.equal(out["lidar"], want)
    returns = (out["lidar"] != 0).any(0).sum().item()
    plain = (resize(lidar, (20, 30), "lidar") != 0).any(0).sum().item()
    assert returns > 2 * plain  # ~34% of cells hold a return vs ~10% with nearest
    # each kept return is the nearest (smallest range) of its 2 x 2 source cell
    blocks = lidar[0].reshape(20, 2, 30, 2).permute(0, 2, 1, 3).reshape(20, 30, 4)
    nearest = torch.where(blocks > 0, blocks, torch.full_like(blocks, 9.0)).min(-1).values
    kept = out["lidar"][0] > 0
    assert torch.equal(out["lidar"][0][kept], nearest[kept]) and kept.sum() == (nearest < 9).sum()
    # a spec from an older checkpoint (resample nearest) keeps plain nearest, as it was trained
    old = RandomResizedCrop((20, 30), scale=(1.0, 1.0), generator=torch.Generator().manual_seed(0),
                            lidar=LidarEncoding(resample="nearest"))(d)
    assert torch.equal(old["lidar"], resize(lidar, (20, 30), "lidar"))
    # depth keeps nearest
    assert torch.equal(out["depth"], resize(d["depth"], (20, 30), "depth"))


def test_train_transform_uses_the_spec_lidar_rule():
    from rmmss_core.spec import LidarEncoding

    t = train_transform((20, 30), lidar=LidarEncoding(resample="nearest"))
    assert t.transforms[0].lidar.resample == "nearest"
    assert train_transform((20, 30)).transforms[0].lidar.resample == "nearest_return"
