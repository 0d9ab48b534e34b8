"""Rotating multi-beam LiDAR: one ray per (beam, azimuth step), cast from the LiDAR's pose.

The clean scan (:func:`scan`) is condition independent; :func:`lidar_points` applies a condition:
range noise, intensity from reflectivity and incidence, fog attenuation and range-dependent
drop-outs, rain drop-outs, and spurious near returns (fog backscatter, rain droplets). The scan is
taken at the frame stamp (no rolling-shutter motion distortion).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmmss_core.data.synth.conditions import Condition
from rmmss_core.data.synth.raycast import World
from rmmss_core.data.synth.rig import Rig
from rmmss_core.data.synth.scene import C


@dataclass
class LidarScan:
    """Clean returns of every ray (all length R = beams * azimuth_steps).

    dirs: ``R x 3`` unit directions in the LiDAR frame; range: metres (inf = no return);
    cls: uint8 class id (255 none); reflect: reflectivity; cos_inc: |cos| of the incidence angle.
    """

    dirs: np.ndarray
    range: np.ndarray
    cls: np.ndarray
    reflect: np.ndarray
    cos_inc: np.ndarray


def scan(world: World, rig: Rig, T_world_ego: np.ndarray) -> LidarScan:
    """Cast every LiDAR ray at ego pose ``T_world_ego`` (4x4) against ``world``."""
    rays = rig.lidar_rays(T_world_ego)
    hits = world.cast(rays)
    cls, _, reflect, _ = world.attributes(hits)
    cos_inc = np.abs(np.sum(hits.normal * rays[:, 3:], axis=1))
    rng = np.where(hits.hit, hits.t, np.inf).astype(np.float32)
    return LidarScan(rig.lidar.directions().reshape(-1, 3).astype(np.float32), rng, cls, reflect,
                     cos_inc.astype(np.float32))


def lidar_points(s: LidarScan, rig: Rig, cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """The point cloud ``N x 4`` float32 (x, y, z, intensity in [0, 1]) in the LiDAR frame."""
    model = rig.lidar
    n = s.range.shape[0]
    r = s.range.astype(np.float64) + rng.normal(0, model.range_noise_m, n)
    refl = s.reflect * np.where(s.cls == C["Road"], 1 - 0.5 * cond.wet, 1.0)  # wet asphalt: specular
    inten = refl * (0.35 + 0.65 * s.cos_inc) + rng.normal(0, 0.01, n)
    keep = np.isfinite(r) & (r >= model.min_range) & (r <= model.max_range)
    if cond.fog_density > 0:  # two-way attenuation: weak far returns fall below the threshold
        att = np.exp(-2 * cond.fog_density * np.where(np.isfinite(r), r, 0))
        inten = inten * att
        keep &= rng.random(n) < np.clip(att * 4, 0, 1)
    keep &= rng.random(n) >= cond.lidar_dropout
    spurious = rng.random(n) < cond.lidar_spurious
    r_sp = rng.uniform(*cond.lidar_spurious_range, n)
    spurious &= ~keep | (r_sp < np.where(np.isfinite(r), r, np.inf))
    r = np.where(spurious, r_sp, r)
    inten = np.where(spurious, rng.uniform(0.0, 0.08, n), inten)
    keep |= spurious
    pts = s.dirs[keep] * r[keep, None]
    return np.concatenate([pts, np.clip(inten[keep], 0, 1)[:, None]], 1).astype(np.float32)
