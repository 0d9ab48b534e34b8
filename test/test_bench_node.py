"""``make bench``'s node section runs (quick mode, in its own process as ``make bench`` runs it) and
reports the issue #14 figures side by side in one run: deserialisation, the default path, one
thread, the numpy references, the float path, a scan-ordered cloud and a distorted camera, so the
benchmark cannot break unseen."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_node_benchmark_quick_run_reports_every_comparison(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "rmmss_cli.bench", "--only", "node", "--quick", "--out", str(tmp_path)],
                   check=True, env=env, capture_output=True, text=True, timeout=300)
    records = json.loads((tmp_path / "node.json").read_text())["records"]
    rec = {r["metric"]: r for r in records if isinstance(r.get("metric"), str)}
    for name in ("deserialise_4_msgs_ms_p50", "node_overhead_no_inference_ms_p50", "node_overhead_cpu_ms_p50",
                 "node_overhead_one_thread_ms_p50", "node_overhead_numpy_references_ms_p50",
                 "node_overhead_scan_ordered_cloud_ms_p50", "node_overhead_plumb_bob_camera_ms_p50",
                 "float_path_before_14_ms_p50"):
        assert rec[name]["value"] > 0, name
    assert rec["overhead_ratio_vs_deserialise"]["value"] == pytest.approx(
        rec["node_overhead_no_inference_ms_p50"]["value"] / rec["deserialise_4_msgs_ms_p50"]["value"])
    md = (tmp_path / "node.md").read_text()
    for text in ("overhead / deserialise", "numpy references", "azimuth order", "plumb_bob", "CPU time"):
        assert text in md, text


def test_finding_message_filters_leaves_sys_path_as_it_was():
    """The bench once appended the ROS 2 underlay's site-packages to sys.path for good: later imports
    then found the underlay's event_camera_msgs without its C type support (a CI failure)."""
    from rmmss_ros.bench.sync import import_message_filters
    before = list(sys.path)
    import_message_filters()
    assert sys.path == before


def test_the_sync_comparison_has_message_filters_side_even_where_it_is_not_installed(monkeypatch):
    """Without message_filters (this environment) the bench's comparison column comes from our
    re-implementation of its policy, labelled so, with no CPU figure; the behaviour it shows is
    message_filters': every set holds all four sensors and a dead LiDAR stops all output."""
    from rmmss_ros.bench import sync
    monkeypatch.setattr(sync, "import_message_filters", lambda: None)
    ours, mf, source = sync.compare(4.0)
    assert source == "reference" and mf["cpu_us_per_message"] is None
    assert mf["share_of_sets_with_lidar"] == 1.0 and mf["sets_per_camera_frame_lidar_dead"] == 0.0
    assert 0.25 < mf["sets_per_camera_frame"] <= 0.34  # one set per LiDAR scan (10 of 30 Hz)
    assert ours["sets_per_camera_frame"] > 0.99 and ours["sets_per_camera_frame_lidar_dead"] > 0.99
