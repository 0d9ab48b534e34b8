"""Camera rendering: ray-cast geometry once per instant, then shade it under any condition.

:func:`render_geometry` is condition independent (z-depth, class ids, normals, textured albedo,
sun visibility, headlight irradiance). :func:`shade` turns it into linear radiance for a
condition; :func:`to_rgb` applies exposure, gamma, sensor noise and rain streaks; :func:`log_intensity`
is what the event camera sees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmmss_core.classes import DELIVER
from rmmss_core.data.synth.conditions import Condition, add_rain_streaks, apply_fog, sensor_noise
from rmmss_core.data.synth.raycast import World
from rmmss_core.data.synth.rig import Rig

SKY = DELIVER.index("Sky")
_BUILDING, _ROAD = DELIVER.index("Building"), DELIVER.index("Road")


@dataclass
class GeometryFrame:
    """Condition-independent camera render (all ``H x W`` unless noted).

    depth: z-depth in metres (inf = no hit); dist: ray length in metres; cls: uint8 class id
    (Sky where nothing is hit); albedo ``H x W x 3`` textured; sun: sun irradiance factor
    (cos incidence, 0 in shadow); sky_light: 0..1 ambient factor; headlight: headlight irradiance
    per unit intensity; up: ray direction z (sky gradient).
    """

    depth: np.ndarray
    dist: np.ndarray
    cls: np.ndarray
    albedo: np.ndarray
    sun: np.ndarray
    sky_light: np.ndarray
    headlight: np.ndarray
    up: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.depth.shape


def _hash01(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice cell."""
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65536.0


def texture(p: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Multiplicative texture ``N`` at texture points ``p N x 3``: grain, patches, windows."""
    def cells(scale: float) -> np.ndarray:
        q = np.floor(p / scale).astype(np.int64)
        return _hash01(q[:, 0], q[:, 1], q[:, 2])

    t = 1.0 + 0.16 * (cells(0.07) - 0.5) + 0.22 * (cells(0.6) - 0.5)
    road = cls == _ROAD
    t[road] += 0.25 * (cells(2.3)[road] - 0.5)  # patched asphalt
    b = cls == _BUILDING
    if b.any():  # windows: a grid on facades (horizontal coordinate x + y, floors in z)
        h = (p[b, 0] + p[b, 1]) / 3.0
        f = p[b, 2] / 3.2
        win = ((h - np.floor(h)) > 0.3) & ((h - np.floor(h)) < 0.75) & ((f - np.floor(f)) > 0.35) \
            & ((f - np.floor(f)) < 0.8) & (p[b, 2] > 1.0)
        t[b] = np.where(win, 0.3 + 0.2 * cells(3.0)[b], t[b])
    return t.astype(np.float32)


def render_geometry(world: World, rig: Rig, T_world_ego: np.ndarray,
                    sun_dir: np.ndarray) -> GeometryFrame:
    """Ray-cast the camera at ego pose ``T_world_ego`` (4x4) against ``world``."""
    H, W = rig.camera.height, rig.camera.width
    rays = rig.camera_rays(T_world_ego)
    hits = world.cast(rays)
    cls, albedo, _, tex = world.attributes(hits)
    ok = hits.hit
    cls = np.where(ok, cls, SKY).astype(np.uint8)
    albedo = albedo * texture(tex, cls)[:, None]
    norm = np.linalg.norm(rays[:, 3:], axis=1)
    dist = np.where(ok, hits.t * norm, np.inf)
    unit = rays[:, 3:] / norm[:, None]
    # sun: Lambert term, zero where a shadow ray towards the sun is blocked
    cos_sun = np.clip(hits.normal @ sun_dir.astype(np.float32), 0, None) * ok
    lit = cos_sun > 0
    pts = rays[:, :3] + rays[:, 3:] * np.where(ok, hits.t, 0)[:, None]
    if lit.any():
        shadow_rays = np.concatenate([pts[lit] + hits.normal[lit] * 0.02,
                                      np.broadcast_to(sun_dir, (int(lit.sum()), 3))], 1)
        lit_idx = np.flatnonzero(lit)
        cos_sun[lit_idx[world.occluded(shadow_rays)]] = 0.0
    sky_light = np.where(ok, 0.55 + 0.45 * hits.normal[:, 2], 1.0)
    # headlights: a forward cone from the camera position, inverse-square falloff
    fwd = (T_world_ego @ rig.T_ego_cam)[:3, 2]
    cone = np.clip((unit @ fwd - 0.7) / 0.3, 0, 1) ** 1.5
    cos_h = np.clip(-np.sum(hits.normal * unit, axis=1), 0, 1)
    headlight = np.where(ok, cone * cos_h / np.maximum(dist, 1.0) ** 2, 0.0)

    def r(a: np.ndarray) -> np.ndarray:
        return a.reshape(H, W)

    return GeometryFrame(r(np.where(ok, hits.t, np.inf).astype(np.float32)), r(dist.astype(np.float32)),
                         r(cls), albedo.reshape(H, W, 3).astype(np.float32),
                         r(cos_sun.astype(np.float32)), r(sky_light.astype(np.float32)),
                         r(headlight.astype(np.float32)), r(unit[:, 2].astype(np.float32)))


def shade(g: GeometryFrame, cond: Condition) -> np.ndarray:
    """Linear radiance ``H x W x 3`` of the frame under ``cond`` (fog included)."""
    irr = cond.ambient * g.sky_light + cond.sun * g.sun + cond.headlights * g.headlight
    rad = g.albedo * (1 - cond.wet * (g.cls != SKY))[..., None] * irr[..., None] * 0.5
    s = np.clip(g.up, 0, 1)[..., None] ** 0.5
    sky = np.asarray(cond.sky_horizon, np.float32) * (1 - s) + np.asarray(cond.sky_top, np.float32) * s
    rad = np.where((g.cls == SKY)[..., None], sky, rad)
    return apply_fog(rad, g.dist, cond).astype(np.float32)


def to_rgb(radiance: np.ndarray, cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """Camera image ``H x W x 3`` uint8: exposure, gamma 2.2, sensor noise, rain streaks."""
    img = np.clip(radiance * cond.exposure, 0, 1) ** (1 / 2.2)
    img = add_rain_streaks(img, cond, rng)
    img = sensor_noise(img, cond, rng)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def log_intensity(radiance: np.ndarray, cond: Condition) -> np.ndarray:
    """What an event camera responds to: ``log(luminance + eps)``, ``H x W`` float32."""
    lum = np.clip(radiance * cond.exposure, 0, None) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.log(lum + cond.event_eps).astype(np.float32)
