"""Sensor -> image encodings shared by training data and the ROS node (one implementation).

Every encoder returns float32 ``H x W x 3`` in [0, 1]; with ``quantize=True`` values sit on the
1/255 grid exactly as the dataset PNGs store them (``encode_to_png_uint8`` / ``from_uint8``).
"""
from rmmss_core.encodings.camera import CameraModel
from rmmss_core.encodings.common import (
    encode_rgb,
    encode_to_png_uint8,
    from_uint8,
    quantize,
    to_uint8,
)
from rmmss_core.encodings.depth import depth_to_hha, depth_to_metres, encode_depth, metric_depth_codes
from rmmss_core.encodings.events import (
    accumulate_events,
    event_pixel_map,
    map_event_pixels,
    map_event_points,
    scaled_pixel_map,
)
from rmmss_core.encodings.lidar import (
    intensity_units_for,
    lidar_returns,
    nearest_per_pixel,
    normalize_intensity,
    project_lidar,
    project_lidar_codes,
    transform_points,
    valid_points,
)

__all__ = [
    "CameraModel", "accumulate_events", "event_pixel_map", "map_event_pixels", "map_event_points", "scaled_pixel_map", "depth_to_hha", "depth_to_metres", "encode_depth", "metric_depth_codes",
    "encode_rgb", "encode_to_png_uint8", "from_uint8", "intensity_units_for", "nearest_per_pixel",
    "normalize_intensity", "project_lidar", "project_lidar_codes", "lidar_returns",
    "quantize", "to_uint8", "transform_points", "valid_points",
]
