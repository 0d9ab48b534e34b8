"""ROS 2 Jazzy launch file for the rmmss perception node (needs a full ROS install: launch, launch_ros).

    ros2 launch rmmss_ros perception.launch.py model_path:=/models/b0.pt backend:=onnxruntime \
        camera_topic:=/front/image_raw lidar_topic:=/velodyne_points

Parameters come from ``params_file`` (default config/perception.yaml, every parameter documented
there, generated from rmmss_ros/params.py); the launch arguments model_path, backend, device,
precision and use_sim_time override it only when given, and the *_topic ones remap topics. When the
node exits (start-up failure, crash) the launch shuts down and ``ros2 launch`` exits non-zero.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

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


# parameter launch arguments: set on the node only when given on the command line, so that the
# params file's values (backend, model_path, use_sim_time, ...) are not overridden by defaults
OVERRIDES = {
    "model_path": "rmmss checkpoint (.pt) or exported ONNX (.onnx); default: the params file's",
    "backend": "inference backend: torch, onnxruntime or tensorrt; default: the params file's",
    "device": "cpu, cuda or cuda:N; default: the params file's",
    "precision": "fp32, fp16 or bf16; default: the params file's",
    "use_sim_time": "use /clock (bags, simulation): true or false; default: the params file's",
}


def _overrides(context):
    """Node parameters from the launch arguments that were given (non-empty) only."""
    out = {}
    for name in OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value != "":
            out[name] = value.lower() == "true" if name == "use_sim_time" else value
    return out


def _on_node_exit(event, context):
    """The node ended: shut the launch down; a non-zero exit (start-up failure, crash, killed)
    raises, which ends ``ros2 launch`` with exit code 1 (launch returns non-zero only on errors)."""
    if event.returncode != 0:
        raise RuntimeError(f"perception_node exited with code {event.returncode}")
    return [Shutdown(reason="perception_node exited")]


def _node(context):
    return [Node(
        package="rmmss_ros",
        executable="perception_node",
        name="perception_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), _overrides(context)],
        remappings=[
            ("camera/image_raw", LaunchConfiguration("camera_topic")),
            ("camera/camera_info", LaunchConfiguration("camera_info_topic")),
            ("depth/image_raw", LaunchConfiguration("depth_topic")),
            ("events", LaunchConfiguration("event_topic")),
            ("lidar/points", LaunchConfiguration("lidar_topic")),
        ],
        on_exit=_on_node_exit,
    )]


def generate_launch_description():
    share = get_package_share_directory("rmmss_ros")
    args = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perception.yaml"),
                              description="parameters YAML (see config/perception.yaml)"),
        *[DeclareLaunchArgument(name, default_value="", description=desc) for name, desc in OVERRIDES.items()],
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        *[DeclareLaunchArgument(name, default_value=default, description=desc)
          for name, (default, desc) in REMAPS.items()],
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
