"""Input corruptions of the RMM and NM protocols, applied to normalised model inputs.

The random draws are made on the CPU from an explicit ``torch.Generator`` and then moved to the
input's device, so a seeded evaluation gives the same corruption on CPU and CUDA.
Noise is applied in the encoded ``[0, 1]`` domain: the input is de-normalised with the spec's
``Normalization``, corrupted, clipped to ``[0, 1]`` and normalised again.
"""
from __future__ import annotations

import torch

from rmmss_core.spec import Normalization


def _stats(norm: Normalization, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(norm.mean, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    std = torch.tensor(norm.std, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return mean, std


def _check(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be B x 3 x H x W, got {tuple(x.shape)}")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device)


def random_missing(x: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """RMM: each pixel of the modality (all 3 channels together) zeroed with probability ``rate``.

    Zero is taken in the normalised input, as the ``zero`` missing-modality representation does.
    ``x``: ``B x 3 x H x W`` -> same shape.
    """
    _check(x, "x")
    if not 0 <= rate <= 1:
        raise ValueError(f"RMM rate must be in [0, 1], got {rate}")
    b, _, h, w = x.shape
    keep = _rand((b, 1, h, w), generator, x.device) >= rate
    return x * keep.to(x.dtype)


def salt_and_pepper(x: torch.Tensor, density: float, norm: Normalization,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """NM: a fraction ``density`` of the elements set to 1 (salt) or 0 (pepper), equally likely,
    in the encoded domain. ``x``: normalised ``B x 3 x H x W``."""
    _check(x, "x")
    if not 0 <= density <= 1:
        raise ValueError(f"salt-and-pepper density must be in [0, 1], got {density}")
    mean, std = _stats(norm, x)
    u = _rand(tuple(x.shape), generator, x.device)
    enc = x * std + mean
    enc = torch.where(u < density / 2, torch.zeros_like(enc), enc)
    enc = torch.where((u >= density / 2) & (u < density), torch.ones_like(enc), enc)
    return (enc - mean) / std


def gaussian_noise(x: torch.Tensor, sigma: float, norm: Normalization,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """NM: additive Gaussian noise of standard deviation ``sigma`` per element in the encoded
    ``[0, 1]`` domain, clipped to ``[0, 1]``. ``x``: normalised ``B x 3 x H x W``."""
    _check(x, "x")
    if sigma < 0:
        raise ValueError(f"gaussian sigma must be >= 0, got {sigma}")
    mean, std = _stats(norm, x)
    noise = torch.randn(tuple(x.shape), generator=generator).to(device=x.device, dtype=x.dtype)
    enc = (x * std + mean + sigma * noise).clamp(0.0, 1.0)
    return (enc - mean) / std
