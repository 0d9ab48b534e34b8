"""``make bench``'s node section runs (quick mode) and reports the issue #14 figures side by side in
one run: deserialisation, the default path, one thread, the numpy references, the float path, a
scan-ordered cloud and a distorted camera, so the benchmark cannot break unseen."""
from __future__ import annotations

import pytest


def test_node_benchmark_quick_run_reports_every_comparison():
    from rmmss_ros.bench_node import run

    report = run(quick=True)
    rec = {r["metric"]: r for r in report.records if "metric" in r}
    for name in ("deserialise_4_msgs_ms_p50", "node_overhead_no_inference_ms_p50", "node_overhead_cpu_ms_p50",
                 "node_overhead_one_thread_ms_p50", "node_overhead_numpy_references_ms_p50",
                 "node_overhead_scan_ordered_cloud_ms_p50", "node_overhead_plumb_bob_camera_ms_p50",
                 "float_path_before_14_ms_p50"):
        assert rec[name]["value"] > 0, name
    assert rec["overhead_ratio_vs_deserialise"]["value"] == pytest.approx(
        rec["node_overhead_no_inference_ms_p50"]["value"] / rec["deserialise_4_msgs_ms_p50"]["value"])
    for text in ("overhead / deserialise", "numpy references", "azimuth order", "plumb_bob", "CPU time"):
        assert text in report.markdown, text
