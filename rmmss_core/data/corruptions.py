"""Sensor corruptions for robustness training and the evaluation protocols (RMM, NM).

The protocols' corruptions act on the **normalised network input**, as the authors' evaluation
scripts do: ``rmm_zero`` (RMM) and ``nm_salt_and_pepper`` / ``nm_gaussian`` (NM), unclipped.

Space of the other functions: *encoded* images in [0, 1] (before normalisation), ``3 x H x W`` or
``B x 3 x H x W`` float tensors; each returns a new tensor of the same shape (inputs are never
modified in place). To corrupt a normalised network input use :func:`in_encoded_space`, which
denormalises, corrupts and normalises again with the spec's statistics. All randomness comes from
the optional ``generator`` (global torch RNG otherwise), so protocols can be made reproducible.

The DELIVER sensor-failure cases are functions too: ``motion_blur`` / ``overexposure`` /
``underexposure`` (camera), ``lidar_jitter`` (LiDAR image), ``event_low_res`` (event image).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rmmss_core.preprocess import denormalize, normalize
from rmmss_core.spec import PreprocessSpec


def _check(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"{name}: expected 3 x H x W or B x 3 x H x W, got shape {tuple(x.shape)}")
    return x


def _rand(shape: tuple[int, ...], x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=g).to(x.device, x.dtype)


def _pixel_shape(x: torch.Tensor) -> tuple[int, ...]:
    return (*x.shape[:-3], 1, *x.shape[-2:])


def zero(x: torch.Tensor) -> torch.Tensor:
    """The sensor is dead: all zeros."""
    return torch.zeros_like(_check(x, "zero"))


def element_dropout(x: torch.Tensor, ratio: float, per_pixel: bool = False,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each element (or each pixel, all channels, with ``per_pixel``) with probability ``ratio``."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"dropout ratio must be in [0, 1], got {ratio}")
    _check(x, "element_dropout")
    shape = _pixel_shape(x) if per_pixel else tuple(x.shape)
    return x * (_rand(shape, x, generator) >= ratio).to(x.dtype)


def salt_and_pepper(x: torch.Tensor, density: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fraction ``density`` of pixels (all channels) set to 0 (pepper) or 1 (salt), half each."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"salt-and-pepper density must be in [0, 1], got {density}")
    _check(x, "salt_and_pepper")
    u = _rand(_pixel_shape(x), x, generator)
    out = torch.where(u < density / 2, torch.zeros_like(x), x)
    return torch.where((u >= density / 2) & (u < density), torch.ones_like(x), out)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, std^2) noise per element, clamped to [0, 1]."""
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    _check(x, "gaussian_noise")
    noise = torch.randn(tuple(x.shape), generator=generator).to(x.device, x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def rmm_zero(x: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """RMM: every element (each value of each channel) of ``x`` zeroed with probability ``rate``.

    On the normalised network input ``B x 3 x H x W``, as RobustSeg/UMMSS@b08d32a:tools/val_mm_RMM.py:124-125
    (``mask = torch.rand(image.shape) < r; image[mask] = 0``).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"RMM rate must be in [0, 1], got {rate}")
    _check(x, "rmm_zero")
    keep = _rand(tuple(x.shape), x, generator) >= rate
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def nm_salt_and_pepper(x: torch.Tensor, density: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """NM salt-and-pepper on a normalised tensor, as RobustSeg/UMMSS@b08d32a:tools/val_mm_NM.py:68-82.

    ``ceil(density * numel / 2)`` element positions drawn uniformly *with replacement* over the
    whole tensor (all dims, channels separately) are set to the tensor's max (salt), then as many
    again to its min (pepper; pepper wins where both fall). Max and min are over the whole tensor
    given (the authors pass the batch), computed before any change. No clipping.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"salt-and-pepper density must be in [0, 1], got {density}")
    _check(x, "nm_salt_and_pepper")
    n = math.ceil(density * x.numel() * 0.5)
    out = x.clone()
    if n == 0 or x.numel() == 0:
        return out
    hi, lo = x.max(), x.min()
    flat = out.view(-1)
    salt = torch.randint(0, x.numel(), (n,), generator=generator).to(x.device)
    flat[salt] = hi
    pepper = torch.randint(0, x.numel(), (n,), generator=generator).to(x.device)
    flat[pepper] = lo
    return out


def nm_gaussian(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """NM Gaussian noise: ``x + N(0, std^2)`` per element of the normalised tensor, **unclipped**
    (RobustSeg/UMMSS@b08d32a:tools/val_mm_NM.py:85-89)."""
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    _check(x, "nm_gaussian")
    return x + std * torch.randn(tuple(x.shape), generator=generator).to(x.device, x.dtype)


def motion_blur(rgb: torch.Tensor, kernel_size: int = 15, angle_deg: float = 0.0) -> torch.Tensor:
    """Linear motion blur: average along a ``kernel_size`` line at ``angle_deg`` (camera failure)."""
    _check(rgb, "motion_blur")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"motion blur kernel size must be odd and >= 1, got {kernel_size}")
    k = torch.zeros(kernel_size, kernel_size)
    c = kernel_size // 2
    a = math.radians(angle_deg)
    for s in torch.linspace(-c, c, 4 * kernel_size).tolist():
        k[round(c - s * math.sin(a)), round(c + s * math.cos(a))] = 1.0
    k = (k / k.sum()).to(rgb.device, rgb.dtype).expand(3, 1, kernel_size, kernel_size)
    xb = rgb if rgb.dim() == 4 else rgb[None]
    out = F.conv2d(F.pad(xb, (c, c, c, c), mode="replicate"), k, groups=3)
    return out if rgb.dim() == 4 else out[0]


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def overexposure(rgb: torch.Tensor, gain: float = 2.5) -> torch.Tensor:
    """Overexposed camera: ``x * gain`` saturating at 1, stored in 8 bits."""
    return _quantize(_check(rgb, "overexposure") * gain)


def underexposure(rgb: torch.Tensor, gain: float = 0.15) -> torch.Tensor:
    """Underexposed camera: ``x * gain`` stored in 8 bits (dark images lose their detail)."""
    return _quantize(_check(rgb, "underexposure") * gain)


def lidar_jitter(lidar: torch.Tensor, max_shift_px: int = 3, generator: torch.Generator | None = None) -> torch.Tensor:
    """Move every LiDAR return (non-zero pixel) by a random offset in ``[-max_shift_px, max_shift_px]``;
    returns shifted outside the image are lost, collisions keep one return."""
    _check(lidar, "lidar_jitter")
    xb = lidar if lidar.dim() == 4 else lidar[None]
    B, C, H, W = xb.shape
    out = torch.zeros_like(xb)
    b, r, c = torch.nonzero(xb.abs().sum(dim=1) > 0, as_tuple=True)
    shift = torch.randint(-max_shift_px, max_shift_px + 1, (2, b.numel()), generator=generator).to(b.device)
    r2, c2 = r + shift[0], c + shift[1]
    ok = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
    vals = xb[b, :, r, c]
    out.permute(0, 2, 3, 1)[b[ok], r2[ok], c2[ok]] = vals[ok]
    return out if lidar.dim() == 4 else out[0]


def event_low_res(event: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """A lower-resolution event camera: average-pool by ``factor`` then nearest upsampling back."""
    _check(event, "event_low_res")
    if factor < 1:
        raise ValueError(f"event low-res factor must be >= 1, got {factor}")
    xb = event if event.dim() == 4 else event[None]
    H, W = xb.shape[-2:]
    small = F.adaptive_avg_pool2d(xb, (max(1, H // factor), max(1, W // factor)))
    out = F.interpolate(small, size=(H, W), mode="nearest")
    return out if event.dim() == 4 else out[0]


# DELIVER failure case -> (modality it affects, corruption with its default strength)
FAILURE_CASES: dict[str, tuple[str, Callable[..., torch.Tensor]]] = {
    "motionblur": ("rgb", motion_blur),
    "overexposure": ("rgb", overexposure),
    "underexposure": ("rgb", underexposure),
    "lidarjitter": ("lidar", lidar_jitter),
    "eventlowres": ("event", event_low_res),
}


def apply_failure_case(images: dict, case: str, **kwargs) -> dict:
    """Apply a DELIVER failure case to the affected modality of an encoded-images dict (copy)."""
    if case not in FAILURE_CASES:
        raise KeyError(f"unknown failure case {case!r}; known: {sorted(FAILURE_CASES)}")
    modality, fn = FAILURE_CASES[case]
    out = dict(images)
    if out.get(modality) is not None:
        out[modality] = fn(out[modality], **kwargs)
    return out


def in_encoded_space(x: torch.Tensor, modality: str, spec: PreprocessSpec,
                     fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Corrupt a *normalised* input ``3 x H x W`` / ``B x 3 x H x W``: denormalise, ``fn``, normalise."""
    norm = spec.normalization[modality]
    return normalize(fn(denormalize(x, norm)), norm)
