"""Parameter and MAC counts.

Two MAC counts are reported:

- ``macs`` (the published convention): what SegFormer's ``tools/get_flops.py`` reports, i.e.
  mmcv's ``get_model_complexity_info`` (module hooks, one multiply-add = 1) plus SegFormer's
  ``sra_flops`` term for the two attention products. Counted per image:
  Conv2d ``k_h k_w C_in/groups C_out`` per output pixel + ``C_out`` for the bias; Linear
  ``numel(input) * out_features`` (no bias); BatchNorm/LayerNorm ``numel(input)`` (x2 if affine);
  ReLU ``numel(output)``; attention ``2 * L * L_kv * C`` per block (sra_flops: f1 + f2 with
  ``n1 = h w``, ``n2 = h w / r^2``). Functional ops (GELU, interpolation, softmax, the fusions'
  element-wise arithmetic, dropout) are not counted, exactly as mmcv does not count them. This is
  the convention of the published SegFormer figures (B0/B1/B2: 8.4/15.9/62.4 GMACs at 512x512, 150
  classes), which ``PUBLISHED`` holds and the tests check within 3 %.
- ``macs_torch``: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2: matrix products and
  convolutions only (attention included, biases and norms not).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from rmmss_core.modalities import MODALITIES, subset_mask
from rmmss_core.models.blocks import BranchLayerNorm, EfficientSelfAttention
from rmmss_core.models.decoder import ConvBNReLU

# SegFormer (Xie et al. 2021, Table 1 / 6), ADE20K head (150 classes): params (M), GMACs at 512x512
PUBLISHED: dict[str, tuple[float, float]] = {"b0": (3.8, 8.4), "b1": (13.7, 15.9), "b2": (27.5, 62.4)}


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int          # mmcv / SegFormer get_flops convention, per image
    macs_torch: int    # FlopCounterMode FLOPs / 2, per image
    height: int
    width: int
    num_modalities: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _mmcv_hook(counter: list[int]):
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        x = args[0]
        if isinstance(module, nn.Conv2d):
            per_pixel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            pixels = output.numel() // module.out_channels
            counter[0] += per_pixel * output.numel() + (pixels * module.out_channels if module.bias is not None else 0)
        elif isinstance(module, nn.Linear):
            counter[0] += x.numel() * module.out_features
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            affine = getattr(module, "elementwise_affine", False) or getattr(module, "affine", False)
            counter[0] += x.numel() * (2 if affine else 1)
        elif isinstance(module, BranchLayerNorm):
            counter[0] += 2 * x.numel()
        elif isinstance(module, ConvBNReLU):
            counter[0] += output.numel()                      # the ReLU (a module in mmcv's ConvModule)
        elif isinstance(module, EfficientSelfAttention):
            n, length, c = x.shape
            counter[0] += 2 * n * length * _kv_length(args[1], module.sr_ratio) * c
    return hook


def _kv_length(hw: tuple[int, int], r: int) -> int:
    """Tokens after the ``r x r`` strided reduction (floor, as the conv)."""
    return (hw[0] // r) * (hw[1] // r) if r > 1 else hw[0] * hw[1]


def mmcv_macs(model: nn.Module, inputs: dict[str, Tensor], available: Tensor) -> int:
    """MACs of one forward pass in SegFormer's published convention (see module docstring)."""
    counter = [0]
    kinds = (nn.Conv2d, nn.Linear, nn.LayerNorm, nn.BatchNorm2d, BranchLayerNorm, ConvBNReLU, EfficientSelfAttention)
    handles = [m.register_forward_hook(_mmcv_hook(counter)) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(inputs, available)
    finally:
        for h in handles:
            h.remove()
    return counter[0]


def torch_macs(model: nn.Module, inputs: dict[str, Tensor], available: Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(inputs, available)
    return fc.get_total_flops() // 2


def model_complexity(model: nn.Module, height: int = 512, width: int = 512, num_available: int | None = None,
                     device: str | torch.device = "meta") -> Complexity:
    """Params and per-image MACs of ``model`` (an AnyModalSegmentor) at ``height x width`` with its first
    ``num_available`` modalities present (all by default). Runs on the meta device by default (no
    compute, no memory); the model is not modified."""
    mods = tuple(getattr(model, "modalities", MODALITIES))
    k = len(mods) if num_available is None else num_available
    present = [MODALITIES.index(m) for m in mods[:k]]
    params = count_params(model)
    was_training = model.training
    probe = model if device == "cpu" else _copy_to(model, device)
    probe.eval()
    inputs = {m: torch.zeros(1, 3, height, width, device=device) for m in MODALITIES}
    available = subset_mask(present, 1, device=device)
    try:
        macs, macs_t = mmcv_macs(probe, inputs, available), torch_macs(probe, inputs, available)
    finally:
        model.train(was_training)
    return Complexity(params, macs, macs_t, height, width, len(present) if mods else 0)


def _copy_to(model: nn.Module, device: str | torch.device) -> nn.Module:
    return copy.deepcopy(model).to(device)


def published_check(size: str, macs: int, tolerance: float = 0.03) -> tuple[float, bool] | None:
    """``(relative error, within tolerance)`` against SegFormer's published GMACs (512x512, 150 classes)."""
    if size not in PUBLISHED:
        return None
    ref = PUBLISHED[size][1] * 1e9
    err = (macs - ref) / ref
    return err, abs(err) <= tolerance
