"""ROS 2 Jazzy launch file for the rmmss perception node (needs a full ROS install: launch, launch_ros).

    ros2 launch rmmss_ros perception.launch.py model_path:=/models/b0.pt backend:=onnxruntime \
        camera_topic:=/front/image_raw lidar_topic:=/velodyne_points

Parameters come from ``params_file`` (default config/perception.yaml, every parameter documented
there, generated from rmmss_ros/node/params.py); the launch arguments model_path, backend, device,
precision and use_sim_time override it only when given, and the *_topic ones remap topics. When the
node exits (start-up failure, crash) the launch shuts down and ``ros2 launch`` exits non-zero.
``lifecycle:=true`` starts the managed node instead (a ``LifecycleNode``: unconfigured until
``ros2 lifecycle set /perception_node configure`` / ``activate`` or a lifecycle manager does it).
Those rules live in ``rmmss_ros/node/launch_args.py`` (ROS-free, tested without the launch system);
this file only wires them into launch actions.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription
from rmmss_ros.node.launch_args import (
    LIFECYCLE_HELP,
    OVERRIDES,
    REMAPS,
    executable,
    managed,
    on_node_exit,
    overrides,
    remappings,
)


def _overrides(context):
    """Node parameters from the launch arguments that were given (non-empty) only."""
    return overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDES})


def _on_node_exit(event, context):
    """The node ended: shut the launch down; a non-zero exit (start-up failure, crash, killed)
    raises, which ends ``ros2 launch`` with exit code 1 (launch returns non-zero only on errors)."""
    on_node_exit(event.returncode)
    return [Shutdown(reason="perception_node exited")]


def _node(context):
    is_managed = managed(LaunchConfiguration("lifecycle").perform(context))
    return [(LifecycleNode if is_managed else Node)(  # lifecycle:=true: configure/activate it from outside
        package="rmmss_ros",
        executable=executable(is_managed),
        name="perception_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), _overrides(context)],
        remappings=remappings({arg: LaunchConfiguration(arg).perform(context) for arg in REMAPS}),
        on_exit=_on_node_exit,
    )]


def generate_launch_description():
    share = get_package_share_directory("rmmss_ros")
    args = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perception.yaml"),
                              description="parameters YAML (see config/perception.yaml)"),
        *[DeclareLaunchArgument(name, default_value="", description=desc) for name, desc in OVERRIDES.items()],
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("lifecycle", default_value="false", description=LIFECYCLE_HELP),
        *[DeclareLaunchArgument(name, default_value=topic, description=desc)
          for name, (topic, desc) in REMAPS.items()],
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
