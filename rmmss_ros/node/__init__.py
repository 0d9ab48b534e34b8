"""The perception node: the rclpy shell (``perception_node.py``, entry point ``main.py``) and its
ROS-free parts: the one parameter table (``params.py``), health summaries (``diagnostics.py``), QoS
matching (``qos_policy.py``) and the bounded frame-set hand-off (``frame_queue.py``)."""
