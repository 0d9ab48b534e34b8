"""Depth -> colour camera registration (depth_image_proc's ``register`` node, without ROS):
:mod:`rmmss_ros.registration.register`. Import from the module; the package re-exports nothing."""
