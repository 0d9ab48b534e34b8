"""Ray casting against a scene with Open3D: a static BVH built once, plus the movers per instant.

Rays are ``N x 6`` float32 (origin, direction; the returned hit distance is in units of the
direction's length). Static and dynamic triangles live in two ``RaycastingScene`` objects; the
nearer hit wins, and triangle ids index the concatenation ``[static, dynamic]`` of attributes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from rmmss_core.data.synth.geometry import Mesh, concat

_INVALID = o3d.t.geometry.RaycastingScene.INVALID_ID


def _o3d_scene(mesh: Mesh) -> o3d.t.geometry.RaycastingScene | None:
    if mesh.num_triangles == 0:
        return None
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(mesh.triangles, np.uint32)))
    return scene


@dataclass
class Hits:
    """First hits of ``N`` rays: ``t N`` (inf where nothing is hit), ``tri N`` (int64, -1 none),
    ``normal N x 3`` (unit, facing the ray origin), ``uv N x 2`` barycentric coordinates."""

    t: np.ndarray
    tri: np.ndarray
    normal: np.ndarray
    uv: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return self.tri >= 0


class World:
    """The scene geometry at one instant: static triangles plus the movers' triangles."""

    def __init__(self, static: Mesh, static_scene: o3d.t.geometry.RaycastingScene | None,
                 dynamic: Mesh, nthreads: int = 0) -> None:
        self.mesh = concat([static, dynamic])
        self._n_static = static.num_triangles
        self._scenes = [(static_scene, 0), (_o3d_scene(dynamic), self._n_static)]
        self.nthreads = nthreads

    def cast(self, rays: np.ndarray) -> Hits:
        """First hit of every ray in ``rays`` (N x 6)."""
        rays_t = o3d.core.Tensor(np.ascontiguousarray(rays, np.float32))
        n = rays.shape[0]
        t = np.full(n, np.inf, np.float32)
        tri = np.full(n, -1, np.int64)
        normal = np.zeros((n, 3), np.float32)
        uv = np.zeros((n, 2), np.float32)
        for scene, offset in self._scenes:
            if scene is None:
                continue
            out = scene.cast_rays(rays_t, nthreads=self.nthreads)
            ti = out["t_hit"].numpy()
            closer = ti < t
            t[closer] = ti[closer]
            tri[closer] = out["primitive_ids"].numpy()[closer].astype(np.int64) + offset
            normal[closer] = out["primitive_normals"].numpy()[closer]
            uv[closer] = out["primitive_uvs"].numpy()[closer]
        facing = np.sum(normal * rays[:, 3:6], axis=1) > 0
        normal[facing] *= -1
        return Hits(t, tri, normal, uv)

    def occluded(self, rays: np.ndarray, tfar: float = np.inf) -> np.ndarray:
        """``N`` bool: whether each ray hits anything between 0 and ``tfar`` (shadow rays)."""
        rays_t = o3d.core.Tensor(np.ascontiguousarray(rays, np.float32))
        occ = np.zeros(rays.shape[0], bool)
        for scene, _ in self._scenes:
            if scene is not None:
                occ |= scene.test_occlusions(rays_t, tnear=0.0, tfar=tfar, nthreads=self.nthreads).numpy()
        return occ

    def attributes(self, hits: Hits) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per ray: class id (uint8, 255 none), albedo N x 3, reflectivity N, texture point N x 3."""
        m, ok = self.mesh, hits.hit
        tri = np.where(ok, hits.tri, 0)
        cls = np.where(ok, m.cls[tri] if m.num_triangles else 255, 255).astype(np.uint8)
        albedo = np.where(ok[:, None], m.albedo[tri] if m.num_triangles else 0, 0).astype(np.float32)
        reflect = np.where(ok, m.reflect[tri] if m.num_triangles else 0, 0).astype(np.float32)
        if m.num_triangles:
            corners = m.tex[m.triangles[tri]]  # N x 3 x 3
            u, v = hits.uv[:, 0:1], hits.uv[:, 1:2]
            tex = (1 - u - v) * corners[:, 0] + u * corners[:, 1] + v * corners[:, 2]
        else:
            tex = np.zeros((len(tri), 3), np.float32)
        return cls, albedo, reflect, tex.astype(np.float32)


class Caster:
    """Builds the static BVH once per scene; :meth:`world` adds the movers at an instant."""

    def __init__(self, static: Mesh, nthreads: int = 0) -> None:
        self.static = static
        self._scene = _o3d_scene(static)
        self.nthreads = nthreads

    def world(self, dynamic: Mesh) -> World:
        return World(self.static, self._scene, dynamic, self.nthreads)
