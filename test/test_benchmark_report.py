"""The robustness benchmark's report on synthetic result tables: present-class mIoU beside
DELIVER's, per-class IoU, and the sanity orderings that decide whether the claims are evidence."""
from __future__ import annotations

import pytest
from _bench_tables import PRESENT, per_seed

from rmmss_core.train.benchmark_report import aggregate, class_table, headline, present_note


def test_headline_and_aggregate_carry_present_class_miou_and_per_class_iou():
    seeds = per_seed({"teacher": [(0.20, 0.05), (0.22, 0.06)]})
    h = headline(seeds[0]["results"]["teacher"]["summary"])
    assert h["full"] == pytest.approx(0.20) and h["full_present"] == pytest.approx(0.20 * 25 / 17)
    assert h["missing14_present"] == pytest.approx(0.05 * 25 / 17)
    assert h["avg15_present"] == pytest.approx((0.20 + 14 * 0.05) / 15 * 25 / 17)
    agg = aggregate(seeds)
    assert agg["teacher"]["full_present"]["mean"] == pytest.approx(0.21 * 25 / 17)
    assert agg["teacher"]["iou/0"]["values"] == pytest.approx([0.20 * 25 / 17, 0.22 * 25 / 17])
    assert agg["teacher"]["iou/24"]["mean"] != agg["teacher"]["iou/24"]["mean"]   # absent: NaN


def test_class_table_lists_present_classes_and_names_the_absent_ones():
    seeds = per_seed({"teacher": [(0.20, 0.05), (0.22, 0.06)], "dropout": [(0.17, 0.08), (0.18, 0.08)]})
    agg = aggregate(seeds)
    summary = seeds[0]["results"]["teacher"]["summary"]
    lines = class_table(agg, ["teacher", "dropout"], summary)
    text = "\n".join(lines)
    assert "| class | Teacher (all sensors) | Dropout baseline |" in text
    rows = [ln for ln in lines if ln.startswith("| ") and "---" not in ln and not ln.startswith("| class")]
    assert len(rows) == len(PRESENT)
    from rmmss_core.classes import get_class_set
    first = get_class_set("deliver").classes[0]
    assert rows[0] == f"| {first} | 30.88 ± 2.08 | 25.74 ± 1.04 |"        # 100 * mean * 25/17 ± std
    assert "Absent from the evaluated split" in text and "Truck" in text.split("Absent")[1]
    assert "17 of the 25 classes" in present_note(summary)
