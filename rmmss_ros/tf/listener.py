"""The thin rclpy glue of the TF buffer: subscriptions to ``/tf_static`` and ``/tf``
(tf2_msgs/msg/TFMessage, from the ROS 2 underlay; on a robot /opt/ros/jazzy) feeding a
:class:`rmmss_ros.tf.buffer.TransformBuffer`.

QoS as tf2_ros' listeners (ros2/geometry2 tf2_ros/include/tf2_ros/qos.hpp): ``/tf_static``
KEEP_LAST 100, RELIABLE, TRANSIENT_LOCAL (static publishers latch and publish once); ``/tf``
KEEP_LAST 100, RELIABLE, VOLATILE.
"""
from __future__ import annotations

from typing import Any

from rmmss_ros.tf.buffer import TransformBuffer

TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"


def tf_message_class() -> tuple[Any | None, str]:
    """(tf2_msgs.msg.TFMessage, "") or (None, why it is not importable)."""
    try:
        from tf2_msgs.msg import TFMessage
    except Exception as e:  # noqa: BLE001 - any import failure means: no TF, parameters only
        return None, (f"tf2_msgs is not importable ({type(e).__name__}: {e}); source the ROS 2 underlay "
                      "(/opt/ros/jazzy or ../shared/ros2-jazzy) to take extrinsics from /tf_static and /tf")
    return TFMessage, ""


def subscribe_tf(node: Any, buffer: TransformBuffer, dynamic: bool = True) -> tuple[list[Any], str]:
    """Subscribe ``node`` to /tf_static (and /tf when ``dynamic``) into ``buffer``. Returns (the
    subscriptions, "") or ([], why not: tf2_msgs missing)."""
    cls, why = tf_message_class()
    if cls is None:
        return [], why
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    static_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
    subs = [node.create_subscription(cls, TF_STATIC_TOPIC, lambda m: buffer.add_message(m, static=True), static_qos)]
    if dynamic:
        dyn_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        subs.append(node.create_subscription(cls, TF_TOPIC, lambda m: buffer.add_message(m, static=False), dyn_qos))
    return subs, ""
