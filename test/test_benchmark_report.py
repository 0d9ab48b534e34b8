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


# ---------------------------------------------------------------- sanity before claims
def _check(table):
    from rmmss_core.train.benchmark_report import LABELS
    from rmmss_core.train.benchmark_sanity import check_sanity
    return check_sanity(aggregate(per_seed(table)), LABELS)


def test_sanity_sound_when_dropout_beats_the_teacher_on_missing_and_the_teacher_leads_with_all():
    s = _check({"teacher": [(0.40, 0.10), (0.41, 0.11), (0.42, 0.10)],
                "dropout": [(0.38, 0.20), (0.39, 0.21), (0.38, 0.22)],
                "m3l": [(0.41, 0.21), (0.40, 0.22), (0.42, 0.20)]})     # m3l ≈ teacher with all: fine
    assert s.status == "sound"
    text = "\n".join(s.lines)
    assert text.count("**holds**") == 3 and "closest: M3L" in text and "are evidence" in text


def test_sanity_too_weak_when_the_teacher_beats_dropout_on_missing_subsets():
    # the regime: the teacher above the dropout baseline on the subsets it never trained for
    s = _check({"teacher": [(0.110, 0.078), (0.112, 0.079), (0.107, 0.077)],
                "dropout": [(0.100, 0.069), (0.101, 0.070), (0.099, 0.069)]})
    assert s.status == "too weak"
    assert [c.verdict for c in s.checks if c.ordering == 1] == ["does not hold", "does not hold"]
    assert "The regime is too weak" in "\n".join(s.lines)


def test_sanity_too_weak_when_another_model_beats_the_teacher_with_all_sensors():
    s = _check({"teacher": [(0.30, 0.10), (0.31, 0.10), (0.30, 0.11)],
                "dropout": [(0.29, 0.20), (0.30, 0.21), (0.29, 0.20)],
                "anyseg": [(0.36, 0.22), (0.37, 0.21), (0.36, 0.22)]})
    assert s.status == "too weak"
    assert "AnySeg above it by +6.00" in "\n".join(s.lines)


def test_sanity_unconfirmed_within_noise_and_unchecked_without_the_runs():
    s = _check({"teacher": [(0.30, 0.10), (0.30, 0.20), (0.30, 0.15)],
                "dropout": [(0.29, 0.16), (0.29, 0.11), (0.29, 0.20)]})
    assert s.status == "unconfirmed"
    assert _check({"teacher": [(0.3, 0.1)], "m3l": [(0.3, 0.2)]}).status == "unchecked"


def test_report_states_the_sanity_orderings_beside_the_claims(tmp_path):
    from rmmss_core.train.benchmark import BenchmarkConfig
    from rmmss_core.train.benchmark_report import write_robustness_report
    table = {"teacher": [(0.110, 0.078), (0.112, 0.079), (0.107, 0.077)],
             "dropout": [(0.100, 0.069), (0.101, 0.070), (0.099, 0.069)],
             "anyseg": [(0.100, 0.070), (0.101, 0.069), (0.099, 0.071)],
             "m3l": [(0.100, 0.075), (0.103, 0.076), (0.101, 0.075)]}
    cfg = BenchmarkConfig(report_dir=str(tmp_path), runs=("teacher", "dropout", "anyseg", "m3l"), seeds=(0, 1, 2))
    md = write_robustness_report(cfg, per_seed(table), {"total_s": 600.0}, tmp_path, "test").read_text()
    sanity = md.index("### Sanity before claims")
    claims = md.index("### The papers' claims, checked")
    assert sanity < claims and "The regime is too weak" in md[sanity:claims]
    claim_lines = [ln for ln in md[claims:].splitlines() if ln.startswith("- ")]
    assert claim_lines and all(ln.endswith("(not evidence: the regime is too weak)") for ln in claim_lines)
    assert any("**holds**" in ln or "**within noise**" in ln or "**does not hold**" in ln for ln in claim_lines)
    assert "| all sensors (present classes) |" in md and "#### Per-class IoU, all sensors" in md
    import json
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert saved["sanity"]["status"] == "too weak"
