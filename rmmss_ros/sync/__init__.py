"""Time synchronisation, ROS-free: the missing-aware synchroniser (``synchronizer.py``: one frame
set per reference stamp, sensors that time out marked missing) and the per-sensor event buffer
(``event_buffer.py``: every event of a frame's window, across packets)."""
