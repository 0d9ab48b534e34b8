"""What leaves the node besides the mask, ROS-free (the rclpy glue lives in rmmss_ros.node):

- :mod:`.label_info`: the ``vision_msgs/LabelInfo`` content (class ids and names from the model's
  spec, 255 = unlabeled, the confidence threshold);
- :mod:`.quality`: the expected quality of the sensor subset in use ("RDL: 0.51 expected, -0.07 vs
  all"), from the table ``rmmss eval --store-quality`` keeps with the model;
- :mod:`.release`: stamp-order release of results (``sync.late_frames: reorder | drop``);
- :mod:`.usability`: "cannot use yet" (waiting for camera_info) versus "errors" (malformed input).
"""
