"""Procedural street scenes: a straight street with lanes, curbs, lots, furniture and traffic.

World frame: x along the street, y to the left, z up, ground at z = 0 (metres). The ego drives in
the right lane (y < 0) towards +x and weaves gently (so it turns); other vehicles and pedestrians
move at constant velocity. :class:`Scene` gives the static mesh, the dynamic mesh at time ``t``
(seconds) and the ego pose at ``t``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rmmss_core.classes import DELIVER
from rmmss_core.data.synth.geometry import Mesh, MeshBuilder, concat, empty_mesh, pose

C = {name: DELIVER.index(name) for name in DELIVER.classes}
LANE_W = 3.5
CURB_H = 0.15

FACADES = ((0.45, 0.40, 0.35), (0.55, 0.50, 0.45), (0.35, 0.30, 0.28), (0.60, 0.58, 0.52),
           (0.40, 0.22, 0.16), (0.30, 0.33, 0.38))
PAINTS = ((0.6, 0.05, 0.04), (0.05, 0.1, 0.45), (0.75, 0.75, 0.75), (0.05, 0.05, 0.05),
          (0.35, 0.35, 0.37), (0.5, 0.45, 0.1), (0.1, 0.3, 0.12))


@dataclass
class Mover:
    """A rigid object moving at constant velocity: ``mesh`` in its local frame, pose at t = 0."""

    mesh: Mesh
    x: float
    y: float
    yaw: float
    vx: float = 0.0
    vy: float = 0.0

    def at(self, t: float) -> Mesh:
        return self.mesh.transformed(pose(self.x + self.vx * t, self.y + self.vy * t, 0.0, self.yaw))


@dataclass
class Ego:
    """Ego trajectory: x = x0 + speed t, y = lane_y + amp sin(2 pi t / period + phase)."""

    speed: float
    lane_y: float
    amp: float
    period: float
    phase: float
    x0: float = 0.0

    def pose(self, t: float) -> np.ndarray:
        """4x4 ego (base_link: x forward, y left, z up, on the ground) in the world at ``t``."""
        w = 2 * np.pi / self.period
        y = self.lane_y + self.amp * np.sin(w * t + self.phase)
        dy = self.amp * w * np.cos(w * t + self.phase)
        return pose(self.x0 + self.speed * t, y, 0.0, float(np.arctan2(dy, self.speed)))


@dataclass
class Scene:
    """One street: static triangles, moving objects, the ego path and the sun direction."""

    static: Mesh
    movers: list[Mover]
    ego: Ego
    sun_dir: np.ndarray  # (3,) unit vector towards the sun, world frame
    road_half_width: float
    info: dict = field(default_factory=dict)

    def dynamic_at(self, t: float) -> Mesh:
        return concat([m.at(t) for m in self.movers]) if self.movers else empty_mesh()


def _vehicle(rng: np.random.Generator, kind: str) -> Mesh:
    """A vehicle in its local frame (x forward, on the ground): car, truck, bus or two-wheeler."""
    b = MeshBuilder()
    paint = PAINTS[rng.integers(len(PAINTS))]
    dark, glass = (0.03, 0.03, 0.03), (0.05, 0.07, 0.09)
    if kind == "car":
        L, W = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
        b.box((0, 0, 0.65), (L, W, 0.7), C["Cars"], paint, 0.5)
        b.box((-0.2, 0, 1.25), (L * 0.5, W * 0.9, 0.55), C["Cars"], glass, 0.2)
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.box((sx * L * 0.32, sy * W * 0.45, 0.33), (0.65, 0.22, 0.66), C["Cars"], dark, 0.1)
        return b.build(rng.uniform(-50, 50, 3))
    if kind in ("truck", "bus"):
        cls = C["Truck"] if kind == "truck" else C["Bus"]
        L = rng.uniform(6.5, 8.5) if kind == "truck" else rng.uniform(10, 12.5)
        W, H = 2.5, rng.uniform(2.9, 3.4)
        if kind == "truck":
            b.box((L / 2 - 1.1, 0, 1.4), (2.2, W, 2.2), cls, paint, 0.5)
            b.box((-1.1, 0, 0.6 + H / 2), (L - 2.3, W, H), cls, PAINTS[rng.integers(len(PAINTS))], 0.6)
        else:
            b.box((0, 0, 0.35 + H / 2), (L, W, H), cls, paint, 0.5)
            b.box((0.1, 0, 0.35 + H * 0.72), (L * 0.96, W + 0.02, H * 0.28), cls, glass, 0.2)
        for sx in (-0.35, 0.35):
            for sy in (-1, 1):
                b.box((sx * L, sy * W * 0.42, 0.5), (1.0, 0.3, 1.0), cls, dark, 0.1)
        return b.build(rng.uniform(-50, 50, 3))
    # two-wheeler with a rider (riders belong to the vehicle, as in DELIVER's TwoWheeler)
    b.box((0, 0, 0.55), (1.8, 0.25, 0.6), C["TwoWheeler"], paint, 0.4)
    for sx in (-0.65, 0.65):
        b.cylinder((sx, 0, 0.0), 0.3, 0.6, C["TwoWheeler"], dark, 0.1, sides=6)
    b.box((-0.1, 0, 1.25), (0.45, 0.4, 0.8), C["TwoWheeler"], PAINTS[rng.integers(len(PAINTS))], 0.3)
    b.blob((-0.05, 0, 1.8), (0.14, 0.14, 0.16), C["TwoWheeler"], (0.1, 0.1, 0.1), 0.3)
    return b.build(rng.uniform(-50, 50, 3))


def _pedestrian(rng: np.random.Generator) -> Mesh:
    b = MeshBuilder()
    h = rng.uniform(1.55, 1.9)
    shirt, pants = PAINTS[rng.integers(len(PAINTS))], PAINTS[rng.integers(len(PAINTS))]
    for sy in (-0.1, 0.1):
        b.box((0, sy, h * 0.24), (0.18, 0.14, h * 0.48), C["Pedestrian"], pants, 0.3)
    b.box((0, 0, h * 0.64), (0.25, 0.45, h * 0.32), C["Pedestrian"], shirt, 0.3)
    b.blob((0, 0, h * 0.9), (0.11, 0.11, 0.12), C["Pedestrian"], (0.55, 0.4, 0.3), 0.3)
    return b.build(rng.uniform(-50, 50, 3))


def _tree(b: MeshBuilder, rng: np.random.Generator, x: float, y: float, z: float = 0.0) -> None:
    h = rng.uniform(3, 7)
    green = (rng.uniform(0.05, 0.12), rng.uniform(0.18, 0.3), rng.uniform(0.03, 0.08))
    b.cylinder((x, y, z), 0.15, h * 0.6, C["Vegetation"], (0.2, 0.13, 0.08), 0.4, sides=6)
    r = rng.uniform(1.2, 2.4)
    b.blob((x, y, z + h * 0.6 + r * 0.7), (r, r, r * rng.uniform(0.8, 1.3)), C["Vegetation"], green, 0.5)


def _lot(b: MeshBuilder, rng: np.random.Generator, x0: float, x1: float, side: int, y_in: float) -> None:
    """Fill the lot x0..x1 beyond the sidewalk edge ``y_in`` (|y|) on ``side`` (+1 left, -1 right)."""
    def ys(a: float, c: float) -> tuple[float, float]:
        return (side * a, side * c) if side > 0 else (side * c, side * a)

    kind = rng.choice(["building", "building", "building", "park", "wall", "fence"])
    depth = rng.uniform(10, 25)
    if kind == "building":
        setback = rng.choice([0.0, 0.0, rng.uniform(2, 6)])
        if setback > 0:
            b.slab(x0, x1, *ys(y_in, y_in + setback), -0.02, 0.08, C["Terrain"], (0.2, 0.26, 0.09), 0.45)
        height = rng.uniform(5, 28)
        b.slab(x0 + 0.3, x1 - 0.3, *ys(y_in + setback, y_in + setback + depth), -0.02, height,
               C["Building"], FACADES[rng.integers(len(FACADES))], 0.35)
        if rng.random() < 0.4:  # a set-back upper storey
            b.slab(x0 + 2, x1 - 2, *ys(y_in + setback + 2, y_in + setback + depth), height,
                   height + rng.uniform(3, 8), C["Building"], FACADES[rng.integers(len(FACADES))], 0.35)
        return
    b.slab(x0, x1, *ys(y_in, y_in + depth), -0.02, 0.08, C["Terrain"], (0.2, 0.26, 0.09), 0.45)
    for _ in range(rng.integers(1, 4) if kind == "park" else rng.integers(0, 2)):
        _tree(b, rng, rng.uniform(x0 + 2, max(x0 + 2.1, x1 - 2)), side * (y_in + rng.uniform(2, depth - 2)))
    if kind == "wall":
        b.slab(x0, x1, *ys(y_in + 0.3, y_in + 0.6), 0.0, rng.uniform(1.2, 3.0), C["Wall"],
               (0.5, 0.48, 0.44), 0.4)
    elif kind == "fence":
        h = rng.uniform(1.0, 2.0)
        for x in np.arange(x0 + 0.2, x1 - 0.1, 0.35):  # slats with gaps: see-through for LiDAR too
            b.slab(x, x + 0.12, *ys(y_in + 0.3, y_in + 0.35), 0.0, h, C["Fence"], (0.35, 0.25, 0.15), 0.3)
        for z in (0.25, h - 0.2):
            b.slab(x0, x1, *ys(y_in + 0.35, y_in + 0.4), z, z + 0.1, C["Fence"], (0.35, 0.25, 0.15), 0.3)


def _markings(b: MeshBuilder, rng: np.random.Generator, x0: float, x1: float, lanes: int,
              hw: float, gaps: list[tuple[float, float]]) -> None:
    """Centre line, dashed lane dividers, edge lines and zebra crossings (RoadLine)."""
    white, yellow, z = (0.8, 0.8, 0.78), (0.75, 0.6, 0.1), 0.01
    refl = 0.15  # same as asphalt: markings are a camera-only cue
    centre = yellow if rng.random() < 0.5 else white
    b.quad(x0, x1, -0.08, 0.08, z, C["RoadLine"], centre, refl)
    for y in ([-LANE_W, LANE_W] if lanes == 2 else []):
        for xs in np.arange(x0, x1, 9.0):
            b.quad(xs, xs + 3.0, y - 0.07, y + 0.07, z, C["RoadLine"], white, refl)
    for y in (-hw + 0.3, hw - 0.3):
        b.quad(x0, x1, y - 0.08, y + 0.08, z, C["RoadLine"], white, refl)
    for g0, g1 in gaps:
        for xc in (g0 - 2.0, g1 + 2.0):
            for y in np.arange(-hw + 0.5, hw - 0.4, 1.0):
                b.quad(xc - 1.5, xc + 1.5, y, y + 0.5, z + 0.001, C["RoadLine"], white, refl)


def build_scene(rng: np.random.Generator, duration_s: float) -> Scene:
    """A random street long enough for ``duration_s`` seconds of ego driving plus view range."""
    lanes = int(rng.integers(1, 3))
    hw = lanes * LANE_W + 0.5
    sw = float(rng.uniform(2.5, 4.5))
    ego = Ego(speed=float(rng.uniform(6, 12)), lane_y=-LANE_W / 2, amp=float(rng.uniform(0.2, 0.7)),
              period=float(rng.uniform(4, 8)), phase=float(rng.uniform(0, 2 * np.pi)))
    x_min, x_max = -60.0, ego.speed * duration_s + 160.0
    b = MeshBuilder()
    b.quad(-1000, 1000, -1000, 1000, -0.02, C["Ground"], (0.25, 0.22, 0.18), 0.3)
    b.quad(x_min - 200, x_max + 200, -hw, hw, 0.0, C["Road"], (0.11, 0.11, 0.12), 0.15)
    # cross streets: gaps in the sidewalks and lots, road surface to both sides
    gaps, x = [], x_min + rng.uniform(40, 90)
    while x < x_max - 30:
        w = rng.uniform(4, 7)
        gaps.append((x - w, x + w))
        b.quad(x - w, x + w, -400, -hw, 0.0, C["Road"], (0.11, 0.11, 0.12), 0.15)
        b.quad(x - w, x + w, hw, 400, 0.0, C["Road"], (0.11, 0.11, 0.12), 0.15)
        x += rng.uniform(70, 160)
    _markings(b, rng, x_min - 200, x_max + 200, lanes, hw, gaps)
    edges = [x_min - 200] + [g for gap in gaps for g in gap] + [x_max + 200]
    blocks = list(zip(edges[0::2], edges[1::2], strict=True))
    for bx0, bx1 in blocks:
        for side in (-1, 1):
            y0, y1 = (hw, hw + sw) if side > 0 else (-hw - sw, -hw)
            b.slab(bx0, bx1, y0, y1, -0.02, CURB_H, C["SideWalk"], (0.38, 0.37, 0.35), 0.35)
            x = bx0
            while x < bx1 - 4:  # lots along the block
                x_end = min(bx1, x + rng.uniform(8, 30))
                _lot(b, rng, x, x_end, side, hw + sw)
                x = x_end
            _furniture(b, rng, bx0, bx1, side, hw, sw)
        for side in (-1, 1):  # traffic lights at the block ends facing the road
            for xe in (bx1 - 1.0, bx0 + 1.0):
                if bx0 - 1 > x_min - 200 and bx1 + 1 < x_max + 200 and rng.random() < 0.7:
                    y = side * (hw + 0.6)
                    b.cylinder((xe, y, CURB_H), 0.08, 4.5, C["Pole"], (0.3, 0.3, 0.3), 0.5)
                    b.box((xe, y - side * 0.0, CURB_H + 3.9), (0.3, 0.35, 0.95), C["TrafficLight"],
                          (0.06, 0.06, 0.05), 0.6)
    movers = _traffic(rng, lanes, hw, sw, ego, x_min, x_max, duration_s)
    az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(20), np.radians(60))
    sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    info = {"lanes_per_direction": lanes, "sidewalk_width_m": round(sw, 2),
            "ego_speed_mps": round(ego.speed, 2), "cross_streets": len(gaps), "movers": len(movers)}
    return Scene(b.build(), movers, ego, sun, hw, info)


def _furniture(b: MeshBuilder, rng: np.random.Generator, x0: float, x1: float, side: int,
               hw: float, sw: float) -> None:
    """Street lamps, signs, sidewalk trees and static clutter along one sidewalk."""
    y_kerb = side * (hw + 0.5)
    for x in np.arange(x0 + rng.uniform(3, 12), x1 - 2, rng.uniform(18, 30)):
        b.cylinder((x, y_kerb, CURB_H), 0.1, 7.0, C["Pole"], (0.35, 0.35, 0.36), 0.5)
        b.slab(x - 0.1, x + 0.1, min(y_kerb, y_kerb - side * 1.5), max(y_kerb, y_kerb - side * 1.5),
               CURB_H + 6.8, CURB_H + 7.0, C["Pole"], (0.35, 0.35, 0.36), 0.5)
    for x in np.arange(x0 + rng.uniform(5, 20), x1 - 2, rng.uniform(25, 50)):
        b.cylinder((x, y_kerb, CURB_H), 0.05, 2.6, C["Pole"], (0.5, 0.5, 0.5), 0.5)
        colour = [(0.7, 0.05, 0.05), (0.05, 0.15, 0.6), (0.8, 0.8, 0.8), (0.8, 0.6, 0.0)][rng.integers(4)]
        b.box((x - side * 0.0, y_kerb, CURB_H + 2.55), (0.05, 0.7, 0.7), C["TrafficSign"], colour, 0.95)
    if rng.random() < 0.6:
        for x in np.arange(x0 + rng.uniform(4, 10), x1 - 3, rng.uniform(10, 16)):
            _tree(b, rng, x, side * (hw + sw - 0.8), CURB_H)
    for _ in range(rng.integers(0, 3)):
        x = rng.uniform(x0 + 1, max(x0 + 1.1, x1 - 1))
        b.box((x, side * (hw + sw * 0.6), CURB_H + 0.45), (0.6, 0.6, 0.9), C["Static"],
              (0.15, 0.3, 0.15), 0.4)


def _traffic(rng: np.random.Generator, lanes: int, hw: float, sw: float, ego: Ego, x_min: float,
             x_max: float, duration_s: float) -> list[Mover]:
    """Oncoming and same-direction vehicles, parked vehicles, a lead car, walking pedestrians."""
    movers: list[Mover] = []
    kinds = ["car"] * 6 + ["truck", "bus", "two-wheeler"]

    def spawn(y: float, vx: float, spacing: tuple[float, float], yaw: float) -> None:
        x = x_min + rng.uniform(0, spacing[1])
        while x < x_max + abs(vx) * duration_s:
            kind = kinds[rng.integers(len(kinds))]
            start = x if vx >= 0 else x  # oncoming ones drive towards -x from far ahead
            movers.append(Mover(_vehicle(rng, kind), start, y, yaw, vx))
            x += rng.uniform(*spacing) + (8 if kind in ("truck", "bus") else 0)

    spawn(LANE_W / 2, -rng.uniform(7, 13), (20, 60), np.pi)  # oncoming lane
    if lanes == 2:
        for side in (-1, 1):  # outer lanes: parked vehicles along the kerb
            x = x_min + rng.uniform(0, 20)
            while x < x_max:
                if rng.random() < 0.5:
                    movers.append(Mover(_vehicle(rng, "car"), x, side * (hw - 1.4), 0.0 if side < 0 else np.pi))
                x += rng.uniform(6, 14)
    if rng.random() < 0.5:  # lead vehicle ahead in the ego lane at about ego speed
        movers.append(Mover(_vehicle(rng, "car"), ego.x0 + rng.uniform(15, 30), ego.lane_y, 0.0,
                            ego.speed * rng.uniform(0.95, 1.05)))
    for side in (-1, 1):
        x = x_min + rng.uniform(0, 10)
        while x < x_max:
            v = rng.choice([-1, 1]) * rng.uniform(0.8, 1.6) * (rng.random() < 0.7)
            movers.append(Mover(_pedestrian(rng), x, side * (hw + rng.uniform(0.8, sw - 0.4)),
                                0.0 if v >= 0 else np.pi, float(v)))
            x += rng.uniform(4, 25)
    return movers
