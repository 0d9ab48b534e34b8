"""Typed configs of the models: MiT sizes (a table) and the any-modal segmentor config.

Configs are frozen dataclasses; ``dataclasses.asdict(config)`` is what a checkpoint stores under
``{"model": {"name", "config"}}`` and ``registry.build_model`` rebuilds the model from it.
"""
from __future__ import annotations

from dataclasses import dataclass

from rmmss_core.modalities import MODALITIES


@dataclass(frozen=True)
class MiTConfig:
    """One Mix Transformer (SegFormer encoder) size: per-stage settings, 4 stages."""

    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: int = 4
    decoder_dim: int = 256


# SegFormer (Xie et al. 2021) Table 6 / METHODS.md; ``tiny`` only for tests.
MIT_SIZES: dict[str, MiTConfig] = {
    "tiny": MiTConfig(dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), heads=(1, 2, 4, 8), decoder_dim=64),
    "b0": MiTConfig(dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), decoder_dim=256),
    "b1": MiTConfig(dims=(64, 128, 320, 512), depths=(2, 2, 2, 2), decoder_dim=256),
    "b2": MiTConfig(dims=(64, 128, 320, 512), depths=(3, 4, 6, 3), decoder_dim=768),
}

FUSIONS: tuple[str, ...] = ("mean", "linear", "hub", "impute")
MISSING: tuple[str, ...] = ("drop", "zero", "token")

# fusion -> missing-modality representations it supports. ``impute`` replaces the features of
# missing modalities, so a zeroed input (``zero``) or mask token (``token``) would be overwritten
# and never trained: only ``drop`` makes sense there.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "mean": MISSING,
    "linear": MISSING,
    "hub": MISSING,
    "impute": ("drop",),
}


@dataclass(frozen=True)
class SegmentorConfig:
    """The any-modal segmentor: shared MiT encoder, per-stage fusion, SegFormer MLP decoder.

    size: a key of MIT_SIZES. fusion: one of FUSIONS. missing: one of MISSING.
    modalities: the sensors this model encodes, a subsequence of MODALITIES (``("lidar",)`` gives a
    LiDAR-only model; inputs and mask columns of other sensors are ignored).
    decoder_dim: 0 = the size's default. linear_ratio: M3L's r (a_i' = r a_i + (1 - r) mean_{j != i} a_j).
    linear_mean: ``"others"`` (M3L: the mean over the other branches) or ``"all"`` (our former
    reading: the mean includes the branch itself). linear_position: ``"attention"`` (M3L: the
    attention output is mixed before the residual add) or ``"stream"`` (our former reading: the
    token stream after it). See models/fusion/linear.py.
    segformer_norms: the LayerNorms of the patch embeddings and of the attention's spatial
    reduction use eps 1e-5 as in SegFormer's own code and the RobustSeg / AnySeg networks built on it
    (NVlabs mix_transformer: ``nn.LayerNorm(embed_dim)``); False (rmmss's own models): 1e-6 there too.
    Set by the importers (rmmss_core/importers) so imported weights give the authors' logits.
    """

    size: str = "b0"
    fusion: str = "mean"
    missing: str = "drop"
    modalities: tuple[str, ...] = MODALITIES
    num_classes: int = 25
    decoder_dim: int = 0
    drop_path_rate: float = 0.1
    decoder_dropout: float = 0.1
    linear_ratio: float = 0.8
    linear_mean: str = "others"
    linear_position: str = "attention"
    impute_hidden_ratio: float = 1.0
    segformer_norms: bool = False

    def __post_init__(self):
        if self.size not in MIT_SIZES:
            raise ValueError(f"unknown MiT size {self.size!r}; valid: {sorted(MIT_SIZES)}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; valid: {list(FUSIONS)}")
        if self.missing not in MISSING:
            raise ValueError(f"unknown missing-modality representation {self.missing!r}; valid: {list(MISSING)}")
        if self.missing not in SUPPORTED[self.fusion]:
            raise ValueError(f"fusion {self.fusion!r} supports missing={list(SUPPORTED[self.fusion])}, "
                             f"not {self.missing!r}")
        mods = tuple(self.modalities)
        if not mods or any(m not in MODALITIES for m in mods) or list(mods) != sorted(
                mods, key=MODALITIES.index) or len(set(mods)) != len(mods):
            raise ValueError(f"modalities must be a non-empty ordered subset of {MODALITIES}, got {mods}")
        if self.fusion == "impute" and len(mods) < 2:
            raise ValueError("fusion 'impute' needs at least 2 modalities to impute one from another")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if not 0.0 <= self.linear_ratio <= 1.0:
            raise ValueError(f"linear_ratio must be in [0, 1], got {self.linear_ratio}")
        if self.linear_mean not in ("others", "all"):
            raise ValueError(f"linear_mean must be 'others' or 'all', got {self.linear_mean!r}")
        if self.linear_position not in ("attention", "stream"):
            raise ValueError(f"linear_position must be 'attention' or 'stream', got {self.linear_position!r}")
        if not 0.0 <= self.drop_path_rate < 1.0 or not 0.0 <= self.decoder_dropout < 1.0:
            raise ValueError("drop_path_rate and decoder_dropout must be in [0, 1)")

    @property
    def mit(self) -> MiTConfig:
        return MIT_SIZES[self.size]

    @property
    def resolved_decoder_dim(self) -> int:
        return self.decoder_dim or self.mit.decoder_dim
