"""Where a sensor image lands in the network input: the resize / crop / letterbox policy
(``PreprocessSpec.resize_policy``) as one affine map, shared by the image resampling
(rmmss_core.preprocess), the LiDAR projection at the network resolution, the event pixels and the
mask that goes back to the camera resolution.

For a source image ``H x W`` and an input ``h x w``, the source window ``(x0, y0, Ws, Hs)`` (a
centre crop, or the whole image) is scaled by ``(sx, sy) = (ws / Ws, hs / Hs)`` into the input box
``(px, py, ws, hs)`` (the whole input, or a centred letterbox box). Pixel centres on integers: a
source pixel coordinate ``u`` lands at ``(u - x0 + 0.5) * sx - 0.5 + px`` (as ``CameraModel.scaled``).

* ``stretch``: window = whole image, box = whole input (aspect ratio not kept);
* ``crop``: scale ``max(h / H, w / W)``, centred source window of the input's aspect ratio;
* ``letterbox``: scale ``min(h / H, w / W)``, centred input box, the rest padded with encoded 0.

Integer rounding: window and box sizes are ``round()``-ed, offsets ``//`` 2 of the remainder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmmss_core.encodings.camera import CameraModel
from rmmss_core.spec import RESIZE_POLICIES


@dataclass(frozen=True)
class InputGeometry:
    """Source ``(src_h, src_w)`` -> input ``(dst_h, dst_w)`` under ``policy`` (see module doc)."""

    src_h: int
    src_w: int
    dst_h: int
    dst_w: int
    policy: str = "stretch"

    def __post_init__(self):
        if self.policy not in RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {self.policy!r}")
        if min(self.src_h, self.src_w, self.dst_h, self.dst_w) <= 0:
            raise ValueError(f"image sizes must be positive, got {self.src_h} x {self.src_w} -> "
                             f"{self.dst_h} x {self.dst_w}")

    @classmethod
    def of(cls, src_hw: tuple[int, int], dst_hw: tuple[int, int], policy: str = "stretch") -> InputGeometry:
        return cls(int(src_hw[0]), int(src_hw[1]), int(dst_hw[0]), int(dst_hw[1]), policy)

    @property
    def window(self) -> tuple[int, int, int, int]:
        """Source window ``(x0, y0, width, height)`` that is resampled."""
        if self.policy == "crop":
            r = max(self.dst_h / self.src_h, self.dst_w / self.src_w)
            ws, hs = min(self.src_w, round(self.dst_w / r)), min(self.src_h, round(self.dst_h / r))
            return (self.src_w - ws) // 2, (self.src_h - hs) // 2, ws, hs
        return 0, 0, self.src_w, self.src_h

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Input box ``(px, py, width, height)`` the window is resampled into."""
        if self.policy == "letterbox":
            r = min(self.dst_h / self.src_h, self.dst_w / self.src_w)
            ws, hs = max(1, min(self.dst_w, round(self.src_w * r))), max(1, min(self.dst_h, round(self.src_h * r)))
            return (self.dst_w - ws) // 2, (self.dst_h - hs) // 2, ws, hs
        return 0, 0, self.dst_w, self.dst_h

    @property
    def identity(self) -> bool:
        return (self.src_h, self.src_w) == (self.dst_h, self.dst_w)

    def camera(self, camera: CameraModel) -> CameraModel:
        """The camera as the network input sees it (``dst_w`` x ``dst_h``): project points with it
        to place them directly on input pixels (LiDAR projection at the network resolution).
        Letterbox: points outside the source image's view can land on the border; only pixels
        inside ``box`` belong to the image."""
        if (camera.height, camera.width) != (self.src_h, self.src_w):
            raise ValueError(f"camera is {camera.width} x {camera.height}, geometry source is "
                             f"{self.src_w} x {self.src_h}")
        x0, y0, ws, hs = self.window
        px, py, bw, bh = self.box
        cam = camera.window(x0, y0, ws, hs) if (x0, y0, ws, hs) != (0, 0, camera.width, camera.height) else camera
        cam = cam.scaled(bw, bh) if (bw, bh) != (ws, hs) else cam
        return cam.window(-px, -py, self.dst_w, self.dst_h) if (px, py, bw, bh) != (0, 0, self.dst_w, self.dst_h) \
            else cam

    def mask_to_source(self, mask: np.ndarray, fill: int = 255) -> np.ndarray:
        """Input-resolution label map ``dst_h x dst_w`` -> ``src_h x src_w`` uint8 (nearest: source
        index = floor(dst * in / out), torch's rule); pixels outside a crop get ``fill``."""
        if mask.shape != (self.dst_h, self.dst_w):
            raise ValueError(f"mask is {mask.shape}, expected {(self.dst_h, self.dst_w)}")
        px, py, bw, bh = self.box
        inner = mask[py:py + bh, px:px + bw]
        x0, y0, ws, hs = self.window
        small = resize_nearest_np(inner, (hs, ws))
        if (ws, hs) == (self.src_w, self.src_h):
            return small
        out = np.full((self.src_h, self.src_w), fill, dtype=np.uint8)
        out[y0:y0 + hs, x0:x0 + ws] = small
        return out


def resize_nearest_np(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resize of an ``h x w`` label map to ``size`` (H, W), torch's 'nearest' rule
    (source index = floor(dst * in / out)); uint8, contiguous."""
    h, w = mask.shape
    H, W = size
    if (h, w) == (H, W):
        return np.ascontiguousarray(mask, dtype=np.uint8)
    rows = (np.arange(H) * h) // H
    cols = (np.arange(W) * w) // W
    return np.ascontiguousarray(mask[rows[:, None], cols[None, :]], dtype=np.uint8)
