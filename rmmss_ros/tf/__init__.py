"""TF for the node without the tf2 libraries (not installable here; on a robot with tf2_ros the same
behaviour is expected): :mod:`rmmss_ros.tf.transform` (quaternion / 4 x 4 maths, slerp),
:mod:`rmmss_ros.tf.buffer` (the ROS-free buffer: static cache, time caches with tf2's lookup and
interpolation rules, chain composition through the common ancestor) and
:mod:`rmmss_ros.tf.extrinsics` (``extrinsics.source``: parameters or TF per sensor, with a status).
The node shell (rmmss_ros.node.perception_node) subscribes /tf_static and /tf into the buffer.
Import from the modules; the package re-exports nothing."""
