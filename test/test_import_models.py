"""`rmmss import`: the authors' released models rebuilt exactly in rmmss's model family.

Exactness: random weights under the authors' key names and shapes (test/authors_ref, an
independent implementation written from reading their code), saved as they save them
(``torch.save(model.state_dict())``), imported, and the rmmss checkpoint's logits compared with the
reference's on every sensor subset their evaluation feeds, at two input sizes (one odd).
"""
from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import pytest
import torch
from authors_ref.segformer_mm_ref import RefSeg, randomize

from rmmss_cli import main as rmmss_main
from rmmss_core.importers import ImportRefused, get_family, import_file
from rmmss_core.importers.segformer_mm import manifest
from rmmss_core.models import create_model, load_model
from rmmss_core.models.checkpoint import load_state_strict

TOL = 1e-5
SIZES = [(64, 96), (45, 70)]
DELIVER_ORDER = ("rgb", "depth", "event", "lidar")
MUSES_ORDER = ("rgb", "event", "lidar")


def _subsets(n: int):
    return [s for k in range(1, n + 1) for s in itertools.combinations(range(n), k)]


@pytest.fixture(scope="module")
def robustseg(tmp_path_factory):
    """The reference (random order of modalities each call, as RobustSeg's eval) and its file."""
    d = tmp_path_factory.mktemp("robustseg")
    ref = randomize(RefSeg(25, permute=True), seed=1)
    path = d / "RobustSeg.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


@pytest.fixture(scope="module")
def anyseg(tmp_path_factory):
    d = tmp_path_factory.mktemp("anyseg")
    ref = randomize(RefSeg(19), seed=2)
    path = d / "anyseg_muses.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


def test_manifest_is_the_reference_state_dict():
    for k in (25, 19):
        sd = RefSeg(k).state_dict()
        man = manifest(k)
        assert len(man) == 193
        assert set(sd) == set(man)
        assert all(tuple(sd[key].shape) == man[key] for key in man)


def _inputs(order, size, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, 3, *size, generator=g) for m in order}


@torch.no_grad()
def _worst_zeroed(model, ref, order, size):
    """Max |ours - theirs| over all subsets, missing inputs zero-filled (their EMM)."""
    x = _inputs(order, size)
    worst = 0.0
    for sub in _subsets(len(order)):
        avail = torch.zeros(2, 4, dtype=torch.bool)
        avail[:, [DELIVER_ORDER.index(order[i]) for i in sub]] = True
        ours = model(x, avail).logits
        theirs = ref([x[m] if i in sub else torch.zeros_like(x[m]) for i, m in enumerate(order)])
        assert ours.shape == theirs.shape == (2, ref.decoder.linear_pred.out_channels, *size)
        worst = max(worst, (ours - theirs).abs().max().item())
    return worst


@pytest.mark.parametrize("size", SIZES)
def test_robustseg_logits_equal_on_all_15_subsets(robustseg, tmp_path, size):
    ref, path = robustseg
    res = import_file("robustseg", path, tmp_path / "rs.pt")
    assert res.missing == "zero" and res.variant == "robustseg" and res.about["recipe"] == "rmmss-hpdm"
    model, spec = load_model(tmp_path / "rs.pt")
    assert spec.num_classes == 25 and spec.class_set == "deliver" and spec.input_size == (256, 256)
    assert spec.depth.kind == "hha" and spec.normalization["lidar"].std == (1.0, 1.0, 1.0)
    assert _worst_zeroed(model, ref, DELIVER_ORDER, size) <= TOL


def test_the_comparison_can_fail(robustseg, tmp_path):
    """Negative control: rmmss's own LayerNorm eps (1e-6 everywhere) is measurably not theirs."""
    ref, path = robustseg
    import_file("robustseg", path, tmp_path / "rs.pt")
    good, _ = load_model(tmp_path / "rs.pt")
    opts = dict(get_family("robustseg").options("zero"), segformer_norms=False)
    wrong = create_model("anymodal", **opts)
    load_state_strict(wrong, good.state_dict())
    assert _worst_zeroed(wrong.eval(), ref, DELIVER_ORDER, SIZES[0]) > 10 * TOL


@pytest.mark.parametrize("size", SIZES)
@torch.no_grad()
def test_anyseg_logits_equal_on_all_7_subsets_fed_alone(anyseg, tmp_path, size):
    """AnySeg's val_mm.py feeds only the subset's sensors: ours drops the others (their default)."""
    ref, path = anyseg
    res = import_file("anyseg", path, tmp_path / "as.pt")
    assert res.missing == "drop" and res.about["class_set"] == "muses"
    model, spec = load_model(tmp_path / "as.pt")
    assert spec.input_size == (1024, 1024) and spec.resize_policy == "stretch"
    assert abs(spec.normalization["rgb"].std[0] * 255 - 1) < 1e-12   # raw 0..255 values
    x = _inputs(MUSES_ORDER, size)
    for sub in _subsets(3):
        avail = torch.zeros(2, 4, dtype=torch.bool)
        avail[:, [DELIVER_ORDER.index(MUSES_ORDER[i]) for i in sub]] = True
        junk = {m: (v if i in sub else torch.full_like(v, float("nan"))) for i, (m, v) in enumerate(x.items())}
        ours = model(junk, avail).logits
        theirs = ref([x[MUSES_ORDER[i]] for i in sub])
        assert (ours - theirs).abs().max().item() <= TOL, sub


def test_anyseg_zero_convention_on_request(anyseg, tmp_path):
    ref, path = anyseg
    import_file("anyseg", path, tmp_path / "az.pt", missing="zero")
    model, _ = load_model(tmp_path / "az.pt")
    assert _worst_zeroed(model, ref, MUSES_ORDER, SIZES[1]) <= TOL


def test_cli_imports_and_names_the_source(robustseg, tmp_path, capsys):
    _, path = robustseg
    teacher = tmp_path / "Teacher.pth"
    teacher.write_bytes(path.read_bytes())
    out = tmp_path / "teacher.pt"
    assert rmmss_main(["import", "robustseg", str(teacher), "--out", str(out)]) == 0
    assert "recipe teacher" in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["about"]["imported"]["file"] == "Teacher.pth"
    assert ckpt["about"]["imported"]["code"].startswith("RobustSeg/UMMSS@")
    assert ckpt["about"]["imported"]["unused_keys"] == ["classifier.weight"]
    import hashlib
    assert ckpt["about"]["imported"]["sha256"] == hashlib.sha256(teacher.read_bytes()).hexdigest()
    assert rmmss_main(["info", "--checkpoint", str(out), "--size", "64x64"]) == 0
    assert "imported   Teacher.pth (robustseg, DELIVER; RobustSeg/UMMSS@" in capsys.readouterr().out
    assert rmmss_main(["import", "robustseg", str(teacher), "--out", str(out)]) == 1   # exists: no --force
    assert "exists" in capsys.readouterr().err
    # a 640 x 480 camera by the authors' rule: short side 256, sides rounded up to multiples of 32
    assert rmmss_main(["import", "robustseg", str(teacher), "--out", str(out), "--force",
                       "--camera-size", "640x480"]) == 0
    assert "input 352x256 (WxH)" in capsys.readouterr().out
    assert load_model(out)[1].input_size == (256, 352)
    assert rmmss_main(["import", "anyseg", str(teacher), "--out", str(out), "--force",
                       "--camera-size", "640x480"]) == 1


class _RunsCode:
    """Unpickling this would create ``marker`` (a code-running pickle)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _foreign_files(tmp: Path, good: Path) -> dict[str, Path]:
    files = {}
    other = create_model("anymodal", size="tiny", num_classes=25)
    torch.save(other.state_dict(), files.setdefault("another model's state_dict", tmp / "other.pth"))
    from rmmss_core.models import save_model_checkpoint
    from rmmss_core.spec import PreprocessSpec
    save_model_checkpoint(files.setdefault("an rmmss checkpoint", tmp / "ours.pt"), other, PreprocessSpec())
    (tmp / "model.onnx").write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x052.4.0" + bytes(200))
    files["an ONNX file"] = tmp / "model.onnx"
    torch.save({"weights": _RunsCode(tmp / "PWNED")}, tmp / "evil.pth")
    files["a code-running pickle"] = tmp / "evil.pth"
    with open(tmp / "evil_legacy.pth", "wb") as f:
        pickle.dump(_RunsCode(tmp / "PWNED"), f)
    files["a legacy code-running pickle"] = tmp / "evil_legacy.pth"
    data = good.read_bytes()
    (tmp / "cut.pth").write_bytes(data[: len(data) // 2])
    files["a truncated file"] = tmp / "cut.pth"
    (tmp / "empty.pth").write_bytes(b"")
    files["an empty file"] = tmp / "empty.pth"
    files["a missing file"] = tmp / "nothing.pth"
    return files


def test_foreign_files_refused_one_line_nothing_written(robustseg, tmp_path, capsys):
    _, good = robustseg
    for what, path in _foreign_files(tmp_path, good).items():
        out = tmp_path / "out.pt"
        code = rmmss_main(["import", "robustseg", str(path), "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 1, what
        assert len(err.splitlines()) == 1 and err.startswith("rmmss import: error:"), (what, err)
        assert not out.exists(), what
        assert not list(tmp_path.glob(".out.pt.*")), what          # no temporary left either
    assert not (tmp_path / "PWNED").exists()                          # the pickle's code never ran


def test_wrong_family_and_edited_keys_are_named(robustseg, tmp_path):
    _, path = robustseg
    with pytest.raises(ImportRefused, match=r"mis-shaped keys \(e.g. decoder.linear_pred.weight"):
        import_file("anyseg", path, tmp_path / "x.pt")                # 25 classes is not AnySeg's 19
    sd = torch.load(path, weights_only=True)
    sd.pop("encoder.block4.1.mlp.fc2.bias")
    sd["decoder.extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "edited.pth")
    with pytest.raises(ImportRefused) as e:
        import_file("robustseg", tmp_path / "edited.pth", tmp_path / "x.pt")
    assert "1 missing keys (e.g. encoder.block4.1.mlp.fc2.bias)" in str(e.value)
    assert "1 extra keys (e.g. decoder.extra.weight)" in str(e.value)
    assert not (tmp_path / "x.pt").exists()


def test_out_must_be_a_checkpoint_name(robustseg, tmp_path, capsys):
    """--out model.onnx wrote a PyTorch checkpoint under an ONNX name (the node and rmmss pick the
    backend by the suffix, so it could not be served); refused in one line, nothing written."""
    _, path = robustseg
    for name in ("model.onnx", "model"):
        out = tmp_path / name
        assert rmmss_main(["import", "robustseg", str(path), "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "rmmss export" in err and ".pt" in err, err
        assert not out.exists()


def test_non_finite_weights_are_refused(robustseg, tmp_path, capsys):
    """A state_dict with a NaN (a diverged run, a damaged file) was imported without a word: the
    network's logits are then NaN and every mask is argmax(NaN) = class 0."""
    _, path = robustseg
    sd = torch.load(path, weights_only=True)
    sd["encoder.block1.0.attn.q.weight"][0, 0] = float("nan")
    sd["decoder.linear_pred.bias"][3] = float("inf")
    torch.save(sd, tmp_path / "diverged.pth")
    out = tmp_path / "d.pt"
    assert rmmss_main(["import", "robustseg", str(tmp_path / "diverged.pth"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NaN or infinite values in 2 weight(s)" in err, err
    assert "encoder.block1.0.attn.q.weight" in err and not out.exists()


def test_trust_pickle_is_explicit(robustseg, tmp_path):
    """A file wrapping the state_dict with Python objects: refused, loaded only with --trust-pickle."""
    import argparse
    _, path = robustseg
    sd = torch.load(path, weights_only=True)
    torch.save({"state_dict": sd, "args": argparse.Namespace(lr=6e-5)}, tmp_path / "wrapped.pth")
    with pytest.raises(ImportRefused, match=r"it needs argparse.Namespace\).*--trust-pickle"):
        import_file("robustseg", tmp_path / "wrapped.pth", tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()
    res = import_file("robustseg", tmp_path / "wrapped.pth", tmp_path / "w.pt", trust_pickle=True,
                      variant="teacher")
    assert res.about["recipe"] == "teacher" and (tmp_path / "w.pt").is_file()


def test_anyseg_spec_feeds_the_sdk_png_values():
    """rmmss's LiDAR / event encodings under the anyseg spec give what AnySeg read from the MUSES SDK's
    PNGs: LiDAR ``floor((v + 100) * 150 / 256)`` (16-bit PNG, high byte through PIL) within one level,
    event counts exactly."""
    import math

    from rmmss_core.importers.anyseg import spec as anyseg_spec
    s = anyseg_spec()
    lid, ev = s.normalization["lidar"], s.normalization["event"]
    for r, i, z in ((3.0, 0.0, -1.7), (50.0, 100.0, 0.4), (150.0, 255.0, 6.0)):
        e = torch.tensor([r / s.lidar.max_range, i / 255.0,
                          (z - s.lidar.min_height) / (s.lidar.max_height - s.lidar.min_height)])
        ours = (e - torch.tensor(lid.mean)) / torch.tensor(lid.std)
        theirs = torch.tensor([math.floor((v + 100) * 150 / 256) for v in (r, i, z)], dtype=torch.float32)
        assert (ours - theirs).abs().max() <= 1.0
    for count in (0, 1, 3, 17, 255):
        e = round(min(count / s.event.count_scale, 1.0) * 255) / 255     # 8-bit quantised encoding
        assert abs((e - ev.mean[0]) / ev.std[0] - count) < 1e-3


def test_specs_normalise_as_the_authors():
    """RobustSeg: RGB /255 then ImageNet mean/std, the other images /255; AnySeg: raw 0..255 values
    (augmentations' Normalize as METHODS.md reads their code; AnySeg's MUSES loader: no transform)."""
    from rmmss_core.importers.anyseg import spec as anyseg_spec
    from rmmss_core.importers.robustseg import spec as robustseg_spec
    from rmmss_core.preprocess import normalize
    img = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    enc = img.float() / 255.0
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    rs = robustseg_spec()
    assert torch.allclose(normalize(enc, rs.normalization["rgb"]), (img / 255.0 - mean) / std, atol=1e-6)
    for m in ("depth", "event", "lidar"):
        assert torch.allclose(normalize(enc, rs.normalization[m]), img / 255.0, atol=1e-7)
    an = anyseg_spec()
    for m in ("rgb", "event"):
        assert torch.allclose(normalize(enc, an.normalization[m]), img.float(), atol=1e-4)


def test_an_rmmss_checkpoint_is_refused_with_a_command_that_works(tmp_path, capsys):
    """The refusal suggested `rmmss info PATH`, which argparse rejects (info takes --checkpoint)."""
    import re
    import shlex

    student = Path(__file__).resolve().parents[1] / "rosbags" / "student.pt"
    assert rmmss_main(["import", "robustseg", str(student), "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    suggested = re.search(r"`rmmss (info [^`]*)`", err)
    assert suggested and not (tmp_path / "x.pt").exists(), err
    assert rmmss_main(shlex.split(suggested.group(1))) == 0
