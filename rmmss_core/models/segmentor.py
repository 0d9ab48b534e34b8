"""The any-modal segmentor: shared MiT encoder -> per-stage fusion -> SegFormer decoder."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rmmss_core.modalities import MODALITIES
from rmmss_core.models.config import SegmentorConfig
from rmmss_core.models.decoder import DecoderOutput, SegFormerHead
from rmmss_core.models.fusion import EnsembleDecoder, FusionOutput, build_fusion
from rmmss_core.models.missing import MissingRepresentation
from rmmss_core.models.mit import MiT, segformer_norm_eps
from rmmss_core.models.registry import register_model


@dataclass
class SegFeatures:
    """Features for distillation (``return_features=True``). M = the model's modalities.

    per_modality: 4 x ``B x M x C_s x H_s x W_s`` encoder stage outputs (zeros where unavailable).
    fused: 4 x ``B x C_s x H_s x W_s`` fused stage features fed to the decoder.
    embedding: ``B x D x H/4 x W/4`` decoder embedding before the classifier.
    imputed: (impute) 4 x ``B x M x C_s x H_s x W_s`` each modality imputed from the others.
    imputed_mask: (impute) ``B x M`` True where imputed features replaced a missing modality.
    impute_valid: (impute) ``B x M`` True where the modality and another one are present (MSE target).
    branch_logits: (linear) ``B x M x K x H x W`` per-branch logits at input resolution.
    """

    per_modality: list[Tensor]
    fused: list[Tensor]
    embedding: Tensor
    imputed: list[Tensor] | None = None
    imputed_mask: Tensor | None = None
    impute_valid: Tensor | None = None
    branch_logits: Tensor | None = None


@dataclass
class SegOutput:
    """``logits B x K x H x W`` at input resolution; ``features`` only when requested."""

    logits: Tensor
    features: SegFeatures | None = field(default=None)


class AnyModalSegmentor(nn.Module):
    """Encoder (weights shared by the modalities) + fusion + decoder, driven by an availability mask.

    forward(inputs, available, return_features=False) -> SegOutput
        inputs: ``{"rgb", "depth", "event", "lidar"}: B x 3 x H x W`` (keys of sensors the model
        does not use may be absent). available: bool ``B x 4`` in MODALITIES order; every row needs a
        True among the model's modalities. Any H, W (odd sizes included).
    """

    def __init__(self, encoder: MiT, fusion: nn.Module, decoder: nn.Module, missing: MissingRepresentation,
                 modalities: tuple[str, ...] = MODALITIES):
        super().__init__()
        if encoder.branches not in (1, len(modalities)):
            raise ValueError(f"encoder has {encoder.branches} branches for {len(modalities)} modalities")
        self.encoder, self.fusion, self.decoder, self.missing = encoder, fusion, decoder, missing
        self.modalities = tuple(modalities)
        self.mask_index = [MODALITIES.index(m) for m in self.modalities]

    @property
    def num_classes(self) -> int:
        return self.decoder.num_classes

    def forward(self, inputs: dict[str, Tensor], available: Tensor, return_features: bool = False) -> SegOutput:
        x = torch.stack([inputs[m] for m in self.modalities], dim=1)           # B x M x 3 x H x W
        avail = available.bool()[:, self.mask_index]                             # B x M
        x = self.missing.mask_inputs(x, avail)
        mask = self.missing.fusion_mask(avail)                                   # who is fused
        per_mod = self.encoder(x.flatten(0, 1), lambda t: self.missing.stage1_tokens(t, avail),
                               self.fusion.mixer(mask))
        per_mod = [_split(f, x.shape[1]) for f in per_mod]                       # B x M x C_s x H_s x W_s
        fusion: FusionOutput = self.fusion(per_mod, mask)
        out: DecoderOutput = self.decoder(fusion.fused, per_mod, mask)
        logits = _resize(out.logits, x.shape[-2:])
        if not return_features:
            return SegOutput(logits)
        return SegOutput(logits, self._features(per_mod, avail, fusion, out, x.shape[-2:]))

    @staticmethod
    def _features(per_mod: list[Tensor], avail: Tensor, fusion: FusionOutput, out: DecoderOutput,
                  size: torch.Size) -> SegFeatures:
        zero = torch.zeros((), dtype=per_mod[0].dtype, device=per_mod[0].device)
        shown = [torch.where(avail[:, :, None, None, None], f, zero) for f in per_mod]
        branch = None if out.branch_logits is None else _split(
            _resize(out.branch_logits.flatten(0, 1), size), out.branch_logits.shape[1])
        return SegFeatures(shown, fusion.fused, out.embedding, fusion.imputed, fusion.imputed_mask,
                           fusion.impute_valid, branch)


class LogitsOnly(nn.Module):
    """Export/deploy wrapper: ``(rgb, depth, event, lidar B x 3 x H x W, available B x 4) -> logits``."""

    def __init__(self, model: AnyModalSegmentor):
        super().__init__()
        self.model = model
        self.train(model.training)   # a fresh wrapper would be in training mode, and export restores it

    def forward(self, rgb: Tensor, depth: Tensor, event: Tensor, lidar: Tensor, available: Tensor) -> Tensor:
        inputs = {"rgb": rgb, "depth": depth, "event": event, "lidar": lidar}
        return self.model(inputs, available).logits


def _split(x: Tensor, m: int) -> Tensor:
    """``(B * M) x C x h x w`` -> ``B x M x C x h x w`` (reshape: exports with dynamic sizes)."""
    return x.reshape(-1, m, x.shape[1], x.shape[2], x.shape[3])


def _resize(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


@register_model("anymodal", SegmentorConfig)
def build_segmentor(cfg: SegmentorConfig) -> AnyModalSegmentor:
    """The configured segmentor; ``create_model("anymodal", size="b0", fusion="mean", missing="drop")``."""
    mit, m = cfg.mit, len(cfg.modalities)
    branches = m if cfg.fusion == "linear" else 1
    encoder = MiT(mit, drop_path_rate=cfg.drop_path_rate, branches=branches)
    if cfg.segformer_norms:
        segformer_norm_eps(encoder)
    fusion = build_fusion(cfg.fusion, encoder.out_channels, m, cfg.linear_ratio, cfg.impute_hidden_ratio,
                          cfg.linear_mean, cfg.linear_position)
    dim = cfg.resolved_decoder_dim
    if cfg.fusion == "linear":
        decoder: nn.Module = EnsembleDecoder(encoder.out_channels, dim, cfg.num_classes, m, cfg.decoder_dropout)
    else:
        decoder = SegFormerHead(encoder.out_channels, dim, cfg.num_classes, cfg.decoder_dropout)
    missing = MissingRepresentation(cfg.missing, mit.dims[0])
    return AnyModalSegmentor(encoder, fusion, decoder, missing, cfg.modalities)
