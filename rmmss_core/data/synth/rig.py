"""The sensor rig on the ego vehicle: a forward pinhole camera and a LiDAR mounted above it.

Frames: ego ``base_link`` (x forward, y left, z up, on the ground); camera optical frame (x right,
y down, z forward); LiDAR frame (x forward, y left, z up). ``T_a_b`` maps points in frame b to
frame a (4x4).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# optical axes expressed in base_link: columns = camera x (right), y (down), z (forward)
_R_EGO_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole intrinsics; pixel (u, v) integer coordinates are pixel centres (OpenCV)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = 90.0) -> PinholeCamera:
        if width < 8 or height < 8:
            raise ValueError(f"camera size must be at least 8x8, got {width}x{height}")
        f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
        return cls(width, height, float(f), float(f), width / 2 - 0.5, height / 2 - 0.5)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    def ray_dirs(self) -> np.ndarray:
        """``H x W x 3`` directions in the optical frame with z = 1 (hit distance = z-depth)."""
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones(u.shape)], -1)


@dataclass(frozen=True)
class LidarModel:
    """A rotating multi-beam scanner: beams spread evenly over [min_elev, max_elev] (degrees)."""

    beams: int = 32
    azimuth_steps: int = 1024
    min_elev_deg: float = -25.0
    max_elev_deg: float = 10.0
    max_range: float = 100.0
    min_range: float = 0.5
    range_noise_m: float = 0.02

    def __post_init__(self):
        if self.beams < 1 or self.azimuth_steps < 8:
            raise ValueError(f"lidar needs >= 1 beam and >= 8 azimuth steps, got {self.beams}, "
                             f"{self.azimuth_steps}")

    def directions(self) -> np.ndarray:
        """``beams x azimuth_steps x 3`` unit directions in the LiDAR frame (azimuth from +x)."""
        el = np.radians(np.linspace(self.min_elev_deg, self.max_elev_deg, self.beams))
        az = np.linspace(0, 2 * np.pi, self.azimuth_steps, endpoint=False)
        el, az = np.meshgrid(el, az, indexing="ij")
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Rig:
    """Camera and LiDAR with their mounting on the ego vehicle."""

    camera: PinholeCamera
    lidar: LidarModel
    cam_xyz: tuple[float, float, float] = (1.0, 0.0, 1.6)
    cam_pitch_deg: float = 3.0  # looking slightly down
    lidar_xyz: tuple[float, float, float] = (0.8, 0.0, 1.95)

    @property
    def T_ego_cam(self) -> np.ndarray:
        p = np.radians(self.cam_pitch_deg)
        pitch = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
        T = np.eye(4)
        T[:3, :3] = pitch @ _R_EGO_OPTICAL
        T[:3, 3] = self.cam_xyz
        return T

    @property
    def T_ego_lidar(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, 3] = self.lidar_xyz
        return T

    @property
    def T_cam_lidar(self) -> np.ndarray:
        return np.linalg.inv(self.T_ego_cam) @ self.T_ego_lidar

    def camera_rays(self, T_world_ego: np.ndarray) -> np.ndarray:
        """``(H*W) x 6`` world rays of the camera pixels, row-major; t = z-depth."""
        T = T_world_ego @ self.T_ego_cam
        d = self.camera.ray_dirs().reshape(-1, 3) @ T[:3, :3].T
        o = np.broadcast_to(T[:3, 3], d.shape)
        return np.concatenate([o, d], 1).astype(np.float32)

    def lidar_rays(self, T_world_ego: np.ndarray) -> np.ndarray:
        """``(beams*azimuth_steps) x 6`` world rays of the LiDAR (unit directions: t = range)."""
        T = T_world_ego @ self.T_ego_lidar
        d = self.lidar.directions().reshape(-1, 3) @ T[:3, :3].T
        o = np.broadcast_to(T[:3, 3], d.shape)
        return np.concatenate([o, d], 1).astype(np.float32)
