"""Bags: write a dataset sequence to a rosbag2 (`writer`), read any rosbag2 robustly (`reader`)."""
