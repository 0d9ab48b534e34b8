"""Frame set -> network inputs -> backend -> masks, ROS-free (shared by the node and replay):
``pipeline.py`` (:class:`Pipeline`, host path), ``gpu.py`` (its device twin), ``prepared.py`` (the
per-frame result types and the per-modality error rule), ``side_thread.py`` (the LiDAR branch beside
the images), ``worker.py`` (the inference thread), ``extrinsics.py`` (16-number extrinsics).

Kept import-free so that light users (the parameter table) can read ``extrinsics`` without torch."""
