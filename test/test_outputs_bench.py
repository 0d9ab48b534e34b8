"""``make bench``'s outputs section (the cost of ~/confidence at 640 x 480) runs in its own process as
``make bench`` runs it and reports both sides of the comparison with the verdict's inputs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow  # a 640 x 480 tiny-model frame takes about a second on one CPU thread
def test_outputs_benchmark_quick_run_reports_both_sides(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "rmmss_cli.bench", "--only", "outputs", "--quick", "--out", str(tmp_path)],
                   check=True, env=env, capture_output=True, text=True, timeout=600)
    rec = {r["metric"]: r for r in json.loads((tmp_path / "outputs.json").read_text())["records"]}
    off, on = rec["node_frame_confidence_off_ms_p50"], rec["node_frame_confidence_on_ms_p50"]
    assert off["value"] > 0 and on["value"] > 0 and off["cpu_ms"] > 0 and on["cpu_ms"] > 0
    assert rec["confidence_extra_share_cpu_of_medians"]["value"] == pytest.approx(on["cpu_ms"] / off["cpu_ms"] - 1)
    assert rec["confidence_extra_share_cpu"]["target"] == 0.10
    head = rec["head_class_ids_and_confidence_cpu_ms_p50"]["value"] - rec["head_class_ids_cpu_ms_p50"]["value"]
    assert head > 0 and rec["confidence_extra_share_from_head"]["value"] == pytest.approx(head / off["cpu_ms"])
    md = (tmp_path / "outputs.md").read_text()
    assert "confidence off" in md and "confidence on" in md and "target <= 10 %" in md
