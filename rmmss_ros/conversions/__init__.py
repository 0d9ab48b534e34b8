"""sensor_msgs <-> numpy without ROS imports: functions take message objects duck-typed (rclpy
messages, rosbags' deserialised messages, or any object with the same fields)."""
from rmmss_ros.conversions.camera_info import (
    binning_and_roi,
    camera_from_info,
    camera_info_key,
    camera_info_warnings,
    check_camera_info,
    image_size_of_info,
)
from rmmss_ros.conversions.common import ConversionError, stamp_to_ns
from rmmss_ros.conversions.event_packet import (
    EVENT_PACKET,
    EVENT_PACKET_MSG,
    Events,
    Evt3Decoder,
    decode_event_packet,
)
from rmmss_ros.conversions.events import (
    decode_event_message,
    encode_event_cloud,
    encode_event_image,
    event_image_codes,
    event_sensor_size,
    events_from_cloud,
    is_event_packet,
)
from rmmss_ros.conversions.image import (
    IMAGE_ENCODINGS,
    depth_codes,
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
    intensity_units_of,
    read_points,
    xyzi_view,
)

__all__ = [
    "EVENT_PACKET", "EVENT_PACKET_MSG", "Events", "Evt3Decoder", "decode_event_message", "decode_event_packet",
    "event_sensor_size", "is_event_packet",
    "DATATYPES", "IMAGE_ENCODINGS", "ConversionError", "binning_and_roi", "camera_from_info", "camera_info_key", "camera_info_warnings", "check_camera_info",
    "image_size_of_info", "cloud_dtype", "cloud_to_xyzi",
    "depth_codes", "encode_event_cloud", "encode_event_image", "event_image_codes", "events_from_cloud", "fill_cloud", "fill_image",
    "image_to_numpy", "intensity_units_of", "read_points", "stamp_to_ns", "to_depth_m", "to_rgb8", "xyzi_view",
]
