"""rmmss_ros: the ROS 2 perception node and the bag tools.

A thin shell around ROS-free modules: synchronisation (`sync`), message conversion
(`conversions`) and the inference pipeline (`pipeline`) import no rclpy and are tested without ROS.
"""
