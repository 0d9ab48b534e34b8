"""Triangle meshes with per-triangle semantics, and the primitive shapes the street is built from.

A :class:`Mesh` holds ``vertices V x 3`` (float32, metres), ``triangles T x 3`` (int32 vertex
indices), per-triangle ``cls T`` (DELIVER class index 0..24), ``albedo T x 3`` (linear RGB in
[0, 1]), ``reflect T`` (LiDAR reflectivity in [0, 1]) and per-vertex ``tex V x 3``: the rest-pose
coordinates the procedural texture is evaluated at, so texture sticks to moving objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BOX_TRIS = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
                      [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]], np.int32)
_PHI = (1 + 5 ** 0.5) / 2
_ICO_V = np.array([[-1, _PHI, 0], [1, _PHI, 0], [-1, -_PHI, 0], [1, -_PHI, 0], [0, -1, _PHI],
                   [0, 1, _PHI], [0, -1, -_PHI], [0, 1, -_PHI], [_PHI, 0, -1], [_PHI, 0, 1],
                   [-_PHI, 0, -1], [-_PHI, 0, 1]], np.float64) / np.hypot(1, _PHI)
_ICO_T = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9],
                   [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2],
                   [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
                   [8, 6, 7], [9, 8, 1]], np.int32)


@dataclass
class Mesh:
    """Triangles with semantics (shapes in the module docstring)."""

    vertices: np.ndarray
    triangles: np.ndarray
    cls: np.ndarray
    albedo: np.ndarray
    reflect: np.ndarray
    tex: np.ndarray

    @property
    def num_triangles(self) -> int:
        return int(self.triangles.shape[0])

    def transformed(self, T: np.ndarray) -> Mesh:
        """The mesh with vertices moved by the 4x4 pose ``T`` (texture coordinates unchanged)."""
        v = self.vertices @ T[:3, :3].T.astype(np.float32) + T[:3, 3].astype(np.float32)
        return Mesh(v.astype(np.float32), self.triangles, self.cls, self.albedo, self.reflect, self.tex)


def concat(meshes: list[Mesh]) -> Mesh:
    """One mesh holding all triangles of ``meshes`` (in order)."""
    if not meshes:
        return empty_mesh()
    offsets = np.cumsum([0] + [m.vertices.shape[0] for m in meshes[:-1]])
    return Mesh(np.concatenate([m.vertices for m in meshes]).astype(np.float32),
                np.concatenate([m.triangles + o for m, o in zip(meshes, offsets, strict=True)]).astype(np.int32),
                np.concatenate([m.cls for m in meshes]).astype(np.uint8),
                np.concatenate([m.albedo for m in meshes]).astype(np.float32),
                np.concatenate([m.reflect for m in meshes]).astype(np.float32),
                np.concatenate([m.tex for m in meshes]).astype(np.float32))


def empty_mesh() -> Mesh:
    return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros(0, np.uint8),
                np.zeros((0, 3), np.float32), np.zeros(0, np.float32), np.zeros((0, 3), np.float32))


def pose(x: float = 0.0, y: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    """4x4 rigid transform: rotation ``yaw`` (rad) about +z, then translation (x, y, z)."""
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = (x, y, z)
    return T


class MeshBuilder:
    """Accumulates shapes; every shape gets one class id, albedo and reflectivity."""

    def __init__(self) -> None:
        self._parts: list[Mesh] = []

    def _add(self, v: np.ndarray, t: np.ndarray, cls: int, albedo, reflect: float,
             tex_offset: np.ndarray | None = None) -> None:
        n = t.shape[0]
        tex = v if tex_offset is None else v + tex_offset
        self._parts.append(Mesh(v.astype(np.float32), t.astype(np.int32), np.full(n, cls, np.uint8),
                                np.tile(np.asarray(albedo, np.float32).reshape(1, 3), (n, 1)),
                                np.full(n, reflect, np.float32), tex.astype(np.float32)))

    def box(self, center, size, cls: int, albedo, reflect: float = 0.3, yaw: float = 0.0) -> None:
        """Box of ``size`` (sx, sy, sz) centred at ``center``, rotated by ``yaw`` about z."""
        sx, sy, sz = (s / 2 for s in size)
        v = np.array([[-sx, -sy, -sz], [sx, -sy, -sz], [sx, sy, -sz], [-sx, sy, -sz],
                      [-sx, -sy, sz], [sx, -sy, sz], [sx, sy, sz], [-sx, sy, sz]])
        v = v @ pose(yaw=yaw)[:3, :3].T + np.asarray(center, np.float64)
        self._add(v, _BOX_TRIS, cls, albedo, reflect)

    def slab(self, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, cls: int,
             albedo, reflect: float = 0.3) -> None:
        """Axis-aligned box from its bounds (roads, sidewalks, buildings)."""
        self.box(((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2), (x1 - x0, y1 - y0, z1 - z0),
                 cls, albedo, reflect)

    def quad(self, x0: float, x1: float, y0: float, y1: float, z: float, cls: int, albedo,
             reflect: float = 0.3) -> None:
        """Horizontal rectangle facing up (+z) at height ``z``."""
        v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
        self._add(v, np.array([[0, 1, 2], [0, 2, 3]]), cls, albedo, reflect)

    def cylinder(self, base, radius: float, height: float, cls: int, albedo,
                 reflect: float = 0.3, sides: int = 8) -> None:
        """Vertical n-sided prism standing on ``base`` (x, y, z)."""
        a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
        ring = np.stack([radius * np.cos(a), radius * np.sin(a), np.zeros(sides)], 1)
        v = np.concatenate([ring, ring + [0, 0, height], [[0, 0, 0], [0, 0, height]]])
        v = v + np.asarray(base, np.float64)
        i = np.arange(sides)
        j = (i + 1) % sides
        side = np.concatenate([np.stack([i, j, j + sides], 1), np.stack([i, j + sides, i + sides], 1)])
        caps = np.concatenate([np.stack([np.full(sides, 2 * sides), j, i], 1),
                               np.stack([np.full(sides, 2 * sides + 1), i + sides, j + sides], 1)])
        self._add(v, np.concatenate([side, caps]), cls, albedo, reflect)

    def blob(self, center, radii, cls: int, albedo, reflect: float = 0.3) -> None:
        """Icosahedron scaled by ``radii`` (rx, ry, rz): tree crowns, heads."""
        self._add(_ICO_V * np.asarray(radii) + np.asarray(center, np.float64), _ICO_T, cls, albedo,
                  reflect)

    def build(self, tex_offset: np.ndarray | None = None) -> Mesh:
        """The accumulated mesh; ``tex_offset`` (3,) shifts texture coordinates (per object)."""
        m = concat(self._parts)
        if tex_offset is not None:
            m.tex = (m.tex + np.asarray(tex_offset, np.float32)).astype(np.float32)
        return m
