"""ROS 2 Jazzy launch file for the rmmss perception node (needs a full ROS install: launch, launch_ros).

    ros2 launch rmmss_ros perception.launch.py model_path:=/models/b0.pt backend:=onnxruntime \
        camera_topic:=/front/image_raw lidar_topic:=/velodyne_points

Parameters come from config/perception.yaml (every parameter documented there, generated from
rmmss_ros/params.py); the launch arguments below override the most common ones and remap topics.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

# launch argument -> (default, description); the *_topic ones remap the node's input topics, whose
# default names are the `<sensor>.topic` parameters of config/perception.yaml.
REMAPS = {
    "camera_topic": ("camera/image_raw", "camera image (sensor_msgs/Image)"),
    "camera_info_topic": ("camera/camera_info", "camera calibration (sensor_msgs/CameraInfo)"),
    "depth_topic": ("depth/image_raw", "depth image (32FC1 m or 16UC1 mm)"),
    "event_topic": ("events", "event frame Image or raw-event PointCloud2"),
    "lidar_topic": ("lidar/points", "LiDAR cloud (sensor_msgs/PointCloud2)"),
}


def generate_launch_description():
    share = get_package_share_directory("rmmss_ros")
    args = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perception.yaml"),
                              description="parameters YAML (see config/perception.yaml)"),
        DeclareLaunchArgument("model_path", description="rmmss checkpoint (.pt) or exported ONNX (.onnx)"),
        DeclareLaunchArgument("backend", default_value="torch", choices=["torch", "onnxruntime", "tensorrt"],
                              description="inference backend"),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu, cuda or cuda:N"),
        DeclareLaunchArgument("precision", default_value="fp32", choices=["fp32", "fp16", "bf16"],
                              description="inference precision"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bags, sim)"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        *[DeclareLaunchArgument(name, default_value=default, description=desc)
          for name, (default, desc) in REMAPS.items()],
    ]
    node = Node(
        package="rmmss_ros",
        executable="perception_node",
        name="perception_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model_path"),
                "backend": LaunchConfiguration("backend"),
                "device": LaunchConfiguration("device"),
                "precision": LaunchConfiguration("precision"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
        remappings=[
            ("camera/image_raw", LaunchConfiguration("camera_topic")),
            ("camera/camera_info", LaunchConfiguration("camera_info_topic")),
            ("depth/image_raw", LaunchConfiguration("depth_topic")),
            ("events", LaunchConfiguration("event_topic")),
            ("lidar/points", LaunchConfiguration("lidar_topic")),
        ],
    )
    return LaunchDescription([*args, node])
