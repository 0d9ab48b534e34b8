"""Issue #14: splitting interleaved 8-bit codes into a reused scratch buffer gives the same planes as
a fresh split (rgb8 as stored and bgr8 read as rgb through a reversed view), the normalised input is
unchanged when the scratch is reused across frames, and a wrong scratch is refused by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rmmss_core.preprocess import Codes, fit_normalize_codes, preprocess
from rmmss_core.spec import PreprocessSpec


@pytest.mark.parametrize("bgr", [False, True])
def test_split_into_scratch_equals_a_fresh_split(bgr):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    codes = Codes.dense(stored[:, :, ::-1] if bgr else stored)
    scratch = np.zeros((3, 48, 64), np.uint8)
    planes = codes.channel_planes(scratch)
    for c in range(3):
        np.testing.assert_array_equal(planes[c], codes.planes[:, :, c])
        assert np.shares_memory(planes[c], scratch)  # written in place, no fresh allocation
    np.testing.assert_array_equal(scratch.transpose(1, 2, 0), codes.planes)


def test_wrong_scratch_is_refused():
    codes = Codes.dense(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="scratch must be a contiguous uint8 3 x 48 x 64"):
        codes.channel_planes(np.zeros((3, 64, 48), np.uint8))


@pytest.mark.parametrize("modality", ["rgb", "event"])
def test_reused_scratch_across_frames_and_sizes_keeps_each_input(modality):
    spec = PreprocessSpec(input_size=(48, 64))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, s, dtype=np.uint8) for s in ((48, 64, 3), (30, 40, 3), (48, 64, 3), (96, 128, 3))]
    for img in frames:  # the float path (codes / 255, fit, normalise) is the reference
        want = preprocess({modality: img.astype(np.float32) / np.float32(255.0)}, spec)[0][modality]
        got = fit_normalize_codes(Codes.dense(img[:, :, ::-1].copy()[:, :, ::-1]), (48, 64), modality, spec,
                                  out=torch.empty(3, 48, 64))
        assert torch.equal(got, want)
