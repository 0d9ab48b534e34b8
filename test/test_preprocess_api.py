"""The library's own preprocessing entry points (``rmmss_core.preprocess.preprocess`` /
``preprocess_batch``, what users call from their scripts and the dataset readers use): a modality
that is absent (key missing or None) is flagged unavailable and gets zeros, for every one of the 15
subsets, alone and in a batch mixing subsets. The node's own path is covered elsewhere
(test_pipeline.py); this one is the public API the mutation audit found unguarded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rmmss_core.modalities import MODALITIES, SUBSETS, subset_name
from rmmss_core.preprocess import preprocess, preprocess_batch
from rmmss_core.spec import PreprocessSpec

SPEC = PreprocessSpec(input_size=(32, 48))


def frame(subset, seed=0, absent="missing"):
    rng = np.random.default_rng(seed)
    out = {m: rng.uniform(0, 1, (40, 60, 3)).astype(np.float32) for i, m in enumerate(MODALITIES) if i in subset}
    if absent == "none":
        out.update({m: None for i, m in enumerate(MODALITIES) if i not in subset})
    return out


@pytest.mark.parametrize("absent", ["missing", "none"])
@pytest.mark.parametrize("subset", SUBSETS, ids=[subset_name(s) for s in SUBSETS])
def test_preprocess_flags_exactly_the_given_modalities(subset, absent):
    inputs, available = preprocess(frame(subset, absent=absent), SPEC)
    assert available.dtype == torch.bool
    assert available.tolist() == [i in subset for i in range(len(MODALITIES))]
    for i, m in enumerate(MODALITIES):
        assert inputs[m].shape == (3, 32, 48)
        assert bool(inputs[m].abs().sum() > 0) == (i in subset), m  # absent: zeros; present: the image


def test_preprocess_batch_keeps_each_frames_own_subset():
    frames = [frame(s, seed=k) for k, s in enumerate(SUBSETS)]
    inputs, available = preprocess_batch(frames, SPEC)
    assert available.shape == (15, 4)
    assert available.tolist() == [[i in s for i in range(4)] for s in SUBSETS]
    for b, s in enumerate(SUBSETS):
        for i, m in enumerate(MODALITIES):
            assert bool(inputs[m][b].abs().sum() > 0) == (i in s), (subset_name(s), m)
