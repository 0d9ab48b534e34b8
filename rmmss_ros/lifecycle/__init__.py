"""The managed-node (ROS 2 lifecycle) shell of the perception node: :mod:`.managed`."""
