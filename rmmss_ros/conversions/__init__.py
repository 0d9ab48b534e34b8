"""sensor_msgs <-> numpy without ROS imports: functions take message objects duck-typed (rclpy
messages, rosbags' deserialised messages, or any object with the same fields)."""
from rmmss_ros.conversions.camera_info import camera_from_info, camera_info_warnings
from rmmss_ros.conversions.common import ConversionError, stamp_to_ns
from rmmss_ros.conversions.events import encode_event_cloud, encode_event_image, events_from_cloud
from rmmss_ros.conversions.image import (
    IMAGE_ENCODINGS,
    fill_image,
    image_to_numpy,
    to_depth_m,
    to_rgb8,
)
from rmmss_ros.conversions.pointcloud import (
    DATATYPES,
    cloud_dtype,
    cloud_to_xyzi,
    fill_cloud,
    read_points,
)

__all__ = [
    "DATATYPES", "IMAGE_ENCODINGS", "ConversionError", "camera_from_info", "camera_info_warnings", "cloud_dtype", "cloud_to_xyzi",
    "encode_event_cloud", "encode_event_image", "events_from_cloud", "fill_cloud", "fill_image",
    "image_to_numpy", "read_points", "stamp_to_ns", "to_depth_m", "to_rgb8",
]
