"""DELIVER's five conditions and what each does to every sensor.

- sun: strong directional light with hard shadows, blue sky, little sensor noise.
- cloud: diffuse light only (no shadows), grey sky.
- fog: contrast falls with distance (Koschmieder: ``I = I0 e^{-b d} + A (1 - e^{-b d})``); depth
  camera range shrinks; LiDAR returns attenuate, drop out with range and fog backscatter adds
  spurious near returns.
- night: very dark ambient light, only the ego headlights; high gain makes the image noisy; the
  event camera sees little contrast and more background noise.
- rain: darker, wet, with streaks over the image; LiDAR drop-outs and spurious droplet returns.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Condition:
    """Lighting, atmosphere and per-sensor degradation of one weather / time-of-day condition."""

    name: str
    sun: float  # directional (sun) irradiance
    ambient: float  # sky-light irradiance
    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    headlights: float = 0.0  # ego headlight intensity (W-ish at 1 m)
    fog_density: float = 0.0  # extinction per metre
    fog_colour: tuple[float, float, float] = (0.6, 0.6, 0.62)
    exposure: float = 1.0
    read_noise: float = 0.005  # std of additive noise on the [0, 1] image
    shot_noise: float = 0.005  # std scale of signal-dependent noise
    rain_streaks: int = 0  # streaks per 100k pixels
    wet: float = 0.0  # darkening of surfaces from rain
    depth_max_range: float = 100.0
    event_eps: float = 0.02  # log(I + eps): larger eps relative to I = less contrast at night
    event_noise_hz: float = 0.05  # background activity per pixel
    lidar_dropout: float = 0.0  # base probability a return is lost
    lidar_spurious: float = 0.0  # fraction of rays with a spurious near return
    lidar_spurious_range: tuple[float, float] = (1.0, 8.0)

    def to_dict(self) -> dict:
        return asdict(self)


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("sun", sun=3.0, ambient=0.9, sky_top=(0.25, 0.45, 0.85), sky_horizon=(0.7, 0.8, 0.95)),
    Condition("cloud", sun=0.0, ambient=1.8, sky_top=(0.55, 0.57, 0.6), sky_horizon=(0.75, 0.76, 0.78),
              exposure=1.1),
    Condition("fog", sun=0.0, ambient=1.6, sky_top=(0.62, 0.62, 0.64), sky_horizon=(0.65, 0.65, 0.67),
              fog_density=0.045, fog_colour=(0.65, 0.65, 0.67), depth_max_range=35.0,
              lidar_dropout=0.02, lidar_spurious=0.04, lidar_spurious_range=(1.0, 12.0)),
    Condition("night", sun=0.0, ambient=0.015, sky_top=(0.005, 0.006, 0.015),
              sky_horizon=(0.02, 0.02, 0.03), headlights=60.0, exposure=1.0, read_noise=0.035,
              shot_noise=0.06, event_eps=0.08, event_noise_hz=1.0),
    Condition("rain", sun=0.0, ambient=1.1, sky_top=(0.35, 0.36, 0.4), sky_horizon=(0.5, 0.5, 0.53),
              fog_density=0.008, fog_colour=(0.45, 0.46, 0.5), rain_streaks=900, wet=0.35,
              read_noise=0.01, depth_max_range=70.0, event_noise_hz=0.5, lidar_dropout=0.08,
              lidar_spurious=0.01, lidar_spurious_range=(0.5, 6.0)),
)}


def get_condition(name: str) -> Condition:
    try:
        return CONDITIONS[name]
    except KeyError:
        raise ValueError(f"unknown condition {name!r}; known: {sorted(CONDITIONS)}") from None


def apply_fog(radiance: np.ndarray, dist: np.ndarray, cond: Condition) -> np.ndarray:
    """Blend ``H x W x 3`` radiance towards the fog colour with distance ``H x W`` (inf = sky)."""
    if cond.fog_density <= 0:
        return radiance
    trans = np.exp(-cond.fog_density * np.where(np.isfinite(dist), dist, 1e4))[..., None]
    return radiance * trans + np.asarray(cond.fog_colour, np.float32) * (1 - trans)


def add_rain_streaks(img: np.ndarray, cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """Bright, slanted, semi-transparent streaks over an ``H x W x 3`` image in [0, 1]."""
    if cond.rain_streaks <= 0:
        return img
    H, W = img.shape[:2]
    n = max(1, int(cond.rain_streaks * H * W / 1e5))
    length = rng.uniform(0.03, 0.08, n) * H
    angle = np.radians(rng.normal(100, 4, n))  # near vertical, falling slightly to the left
    x0, y0 = rng.uniform(0, W, n), rng.uniform(-0.05 * H, H, n)
    s = np.linspace(0, 1, max(2, int(0.08 * H)))
    xs = (x0[:, None] + np.cos(angle)[:, None] * length[:, None] * s).astype(int).ravel()
    ys = (y0[:, None] + np.sin(angle)[:, None] * length[:, None] * s).astype(int).ravel()
    ok = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    mask = np.zeros((H, W), np.float32)
    np.add.at(mask, (ys[ok], xs[ok]), 1.0)
    alpha = np.clip(mask * 0.35, 0, 0.6)[..., None]
    return img * (1 - alpha) + 0.85 * alpha


def sensor_noise(img: np.ndarray, cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """Read noise plus signal-dependent shot noise on an ``H x W x 3`` image in [0, 1]."""
    std = np.sqrt(cond.read_noise ** 2 + cond.shot_noise ** 2 * np.clip(img, 0, 1))
    return img + rng.standard_normal(img.shape).astype(np.float32) * std


def depth_sensor(depth_z: np.ndarray, cond: Condition, rng: np.random.Generator,
                 sigma0: float = 0.01, sigma2: float = 0.0008, dropout: float = 0.005) -> np.ndarray:
    """Depth camera reading ``H x W`` float32 metres (NaN = invalid) from true z-depth (inf = sky).

    Stereo-like noise ``sigma = sigma0 + sigma2 * z^2``; invalid beyond the condition's range
    (fog and rain shorten it) and at a small fraction of random pixels.
    """
    z = depth_z.astype(np.float32)
    noisy = z + rng.standard_normal(z.shape).astype(np.float32) * (sigma0 + sigma2 * np.square(
        np.where(np.isfinite(z), z, 0)))
    invalid = ~np.isfinite(z) | (z > cond.depth_max_range) | (rng.random(z.shape) < dropout)
    return np.where(invalid | (noisy <= 0), np.nan, noisy).astype(np.float32)
