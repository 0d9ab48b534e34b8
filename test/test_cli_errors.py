"""The offline CLI protects the user's work and says what is wrong (issue #15, "Failures seen").

One tiny synthetic world and a few 2-step runs (tiny MiT, 32 x 40) are shared by the module; every
test provokes one mistake through ``rmmss ...`` (in-process ``main``) and checks: exit code, one
stderr line naming the input and the problem, and no partial output.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmmss_cli import main as rmmss
from rmmss_core.models.checkpoint import load_model, save_model_checkpoint
from rmmss_core.utils.io import atomic_torch_save, load_checkpoint

TINY = ["model.options.size=tiny", "model.options.drop_path_rate=0", "data.input_size=[32,40]",
        "data.batch_size=2", "data.num_workers=0", "data.val_frames=2", "val_subsets=[RDEL,R]",
        "optim.warmup_iters=1", "progress=false", "iters=2"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """data/ (15 frames: 5 per split, 64 x 48) and runs/{teacher,dropout,hpdm,fsm} of 2 steps each."""
    root = tmp_path_factory.mktemp("cliworld")
    data = root / "data"
    assert rmmss(["synth", "--out", str(data), "--frames", "15", "--size", "64x48", "--sequences", "3",
                  "--splits", "train=0.34,val=0.33,test=0.33", "--no-progress"]) == 0
    runs = root / "runs"
    for recipe, name, extra in [("teacher", "teacher", []), ("dropout", "dropout", []),
                                ("rmmss-hpdm", "hpdm", ["--teacher", str(runs / "teacher" / "best.pt")]),
                                ("rmmss-fsm", "fsm", ["--teacher", str(runs / "teacher" / "best.pt"),
                                                      "--robust", str(runs / "hpdm" / "best.pt")])]:
        assert rmmss(["train", recipe, "--data", str(data), "--out", str(runs / name), *extra, *TINY]) == 0
    return root


def describe_checkpoint(ckpt):
    from rmmss_core.models.checkpoint import describe_checkpoint as describe  # new in #15
    return describe(ckpt)


def _err(capsys) -> str:
    """stderr of the last command, which must be exactly one ``rmmss <cmd>: error: ...`` line."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error:" in ln or "Traceback" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _train(world, recipe, out, *extra):
    return rmmss(["train", recipe, "--data", str(world / "data"), "--out", str(out), *TINY, *extra])


# ---------------------------------------------------------------- 1. silent overwrite
def test_train_refuses_to_overwrite_a_run_unless_resume_or_overwrite(world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(world / "runs" / "dropout", run)
    before = {f: (run / f).read_bytes() for f in ("best.pt", "last.pt", "result.json")}
    assert _train(world, "dropout", run, "iters=4") == 1
    line = _err(capsys)
    assert f"--out {run} already holds a run (last.pt at step 2)" in line and "--overwrite" in line
    assert {f: (run / f).read_bytes() for f in before} == before  # untouched
    assert _train(world, "dropout", run, "--resume", "--overwrite") == 1
    assert "contradict" in _err(capsys)
    assert _train(world, "dropout", run, "--overwrite", "iters=3") == 0
    assert json.loads((run / "result.json").read_text())["step"] == 3
    assert load_checkpoint(run / "last.pt")["step"] == 3


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(world, tmp_path, capsys):
    """Found by a new user: --overwrite deleted the old run, then refused a missing --teacher; the
    run was lost. Every check now comes first, a --teacher inside the replaced folder is refused, and
    a run failing before its first checkpoint gives the old run back."""
    run = tmp_path / "run"
    shutil.copytree(world / "runs" / "teacher", run)
    before = {f: (run / f).read_bytes() for f in ("best.pt", "last.pt", "result.json")}
    assert _train(world, "anyseg", run, "--overwrite", "--teacher", str(tmp_path / "nope.pt")) == 1
    assert "nope.pt" in _err(capsys)
    assert {f: (run / f).read_bytes() for f in before} == before
    assert _train(world, "rmmss-hpdm", run, "--overwrite", "--teacher", str(run / "best.pt")) == 1
    assert "lies inside --out" in _err(capsys)
    assert {f: (run / f).read_bytes() for f in before} == before
    # a failure after the checks, before the first checkpoint: the old run comes back whole
    import rmmss_core.train.run as run_mod
    real = run_mod.build_train_set

    def broken(*a, **k):
        raise RuntimeError("frame 3: rgb file unreadable")
    run_mod.build_train_set = broken
    try:
        assert _train(world, "teacher", run, "--overwrite") == 1
    finally:
        run_mod.build_train_set = real
    assert "unreadable" in _err(capsys)
    assert {f: (run / f).read_bytes() for f in before} == before
    assert not (run / ".previous-run").exists()


def test_runs_from_before_these_settings_still_resume(world, tmp_path):
    """A last.pt written before data.modalities existed resumes (the new key is at its default)."""
    run = tmp_path / "run"
    shutil.copytree(world / "runs" / "dropout", run)
    ckpt = load_checkpoint(run / "last.pt")
    del ckpt["train_config"]["data"]["modalities"]
    del ckpt["about"]
    atomic_torch_save(ckpt, run / "last.pt")
    assert _train(world, "dropout", run, "--resume", "iters=3") == 0
    assert load_checkpoint(run / "last.pt")["step"] == 3


# ---------------------------------------------------------------- 2. missing modality folder
@pytest.fixture(scope="module")
def no_lidar(world) -> Path:
    data = world / "nolidar"
    shutil.copytree(world / "data", data, ignore=lambda d, names: ["lidar"] if Path(d) == world / "data" else [])
    return data


def test_missing_modality_folder_is_an_error_naming_it(world, no_lidar, tmp_path, capsys):
    assert rmmss(["train", "teacher", "--data", str(no_lidar), "--out", str(tmp_path / "t"), *TINY]) == 1
    line = _err(capsys)
    assert str(no_lidar / "lidar") in line and "missing" in line and "data.modalities=[rgb,depth,event]" in line
    assert not (tmp_path / "t").exists()
    assert rmmss(["eval", "--checkpoint", str(world / "runs" / "teacher" / "best.pt"), "--data", str(no_lidar),
                  "--dataset", "synthetic", "--split", "test", "--protocols", "emm", "--out", str(tmp_path / "e"),
                  "--no-progress"]) == 1
    line = _err(capsys)
    assert str(no_lidar / "lidar") in line and "--modalities RDE" in line
    assert not (tmp_path / "e").exists()


def test_fewer_sensors_on_purpose_are_reported(world, no_lidar, tmp_path):
    out = tmp_path / "t"
    assert rmmss(["train", "teacher", "--data", str(no_lidar), "--out", str(out), *TINY,
                  "data.modalities=[rgb,depth,event]"]) == 0
    assert json.loads((out / "result.json").read_text())["data_modalities"] == ["rgb", "depth", "event"]
    assert describe_checkpoint(load_checkpoint(out / "last.pt"))["data_modalities"] == ["rgb", "depth", "event"]
    assert rmmss(["eval", "--checkpoint", str(out / "best.pt"), "--data", str(no_lidar), "--dataset", "synthetic",
                  "--split", "test", "--protocols", "emm", "--out", str(tmp_path / "e"), "--modalities", "RDE",
                  "--no-progress"]) == 0
    meta = json.loads((tmp_path / "e" / "eval.json").read_text())["meta"]
    assert meta["modalities"] == "RDE" and meta["left_out"].startswith("lidar")
    assert "left_out: lidar" in (tmp_path / "e" / "eval.md").read_text()


# ---------------------------------------------------------------- 3. checkpoints of the wrong kind
def test_checkpoints_say_what_they_are(world):
    runs = world / "runs"
    t = describe_checkpoint(load_checkpoint(runs / "teacher" / "best.pt"))
    assert t["recipe"] == "teacher" and t["modalities"] == ["rgb", "depth", "event", "lidar"]
    assert t["num_classes"] == 25 and t["class_set"] == "deliver" and t["size"] == "tiny"
    fsm = load_checkpoint(runs / "fsm" / "best.pt")
    about = describe_checkpoint(fsm)
    assert about["recipe"] == "rmmss-fsm" and about["model"] == "rmmss_fsm" and about["size"] == "tiny"
    assert about["teacher"] == str(runs / "teacher" / "best.pt") and about["robust"] == str(runs / "hpdm" / "best.pt")
    assert fsm["about"] == about  # stored, not derived


@pytest.mark.parametrize("recipe, teacher, robust, expected", [
    ("rmmss-fsm", "dropout", "hpdm", "--teacher {dropout} is a dropout checkpoint, but rmmss-fsm needs the "
                                     "full-modality teacher"),
    ("rmmss-fsm", "hpdm", "teacher", "--teacher {hpdm} is a rmmss-hpdm checkpoint, but rmmss-fsm needs the "
                                     "full-modality teacher (recipe teacher); are --teacher and --robust swapped?"),
    ("u2mkd", "teacher", None, "--teacher {teacher} is a teacher on RDEL, but u2mkd needs the LiDAR-only teacher"),
    ("compress", "teacher", None, "--teacher {teacher} is a teacher checkpoint, but compress needs an RMMSS-FSM "
                                  "student"),
    ("teacher", "teacher", None, "--teacher {teacher}: recipe teacher takes no teacher checkpoint"),
    ("anyseg", "teacher", "hpdm", "--robust {hpdm}: recipe anyseg takes no robust checkpoint"),
])
def test_wrong_kind_of_source_checkpoint_is_refused(world, tmp_path, capsys, recipe, teacher, robust, expected):
    ckpt = {n: str(world / "runs" / n / "best.pt") for n in ("teacher", "dropout", "hpdm", "fsm")}
    extra = ["--teacher", ckpt[teacher]] + (["--robust", ckpt[robust]] if robust else [])
    assert _train(world, recipe, tmp_path / "r", *extra) == 1
    assert expected.format(**ckpt) in _err(capsys)
    assert not (tmp_path / "r").exists()


def test_old_checkpoints_load_and_say_when_their_kind_cannot_be_checked(world, tmp_path, caplog):
    from rmmss_core.train.config import TrainConfig
    from rmmss_core.train.requirements import check_sources
    from rmmss_core.utils.config import load_config
    ckpt = load_checkpoint(world / "runs" / "dropout" / "best.pt")
    # a training checkpoint from before "about": its stored recipe still identifies it
    older = {k: v for k, v in ckpt.items() if k != "about"}
    atomic_torch_save(older, tmp_path / "older.pt")
    cfg = load_config(TrainConfig, None, ["recipe=anyseg", f"teacher={tmp_path / 'older.pt'}"])
    with pytest.raises(ValueError, match="is a dropout checkpoint, but anyseg needs"):
        check_sources(cfg)
    # a bare model checkpoint of an older rmmss (no about, no recipe): loads, with a warning
    oldest = {k: v for k, v in ckpt.items() if k in ("format", "model", "state_dict", "spec")}
    atomic_torch_save(oldest, tmp_path / "oldest.pt")
    model, spec = load_model(tmp_path / "oldest.pt")
    assert spec.num_classes == 25 and describe_checkpoint(oldest)["recipe"] is None
    cfg = load_config(TrainConfig, None, ["recipe=anyseg", f"teacher={tmp_path / 'oldest.pt'}"])
    assert set(check_sources(cfg)) == {"teacher"}
    assert f"--teacher {tmp_path / 'oldest.pt'}: cannot check its kind" in caplog.text
    # checkpoints written outside training say so (recipe None) but carry the rest
    save_model_checkpoint(tmp_path / "bare.pt", model, spec)
    assert describe_checkpoint(load_checkpoint(tmp_path / "bare.pt"))["modalities"] == ["rgb", "depth", "event", "lidar"]


# ---------------------------------------------------------------- 4. one line instead of a traceback
def _blocked(tmp_path, how):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    return {"file": blocker, "under-file": blocker / "sub", "sysfs": Path("/sys/rmmss-out")}[how]


@pytest.mark.parametrize("how", ["file", "under-file", "sysfs"])
@pytest.mark.parametrize("command", ["train", "eval", "export", "synth", "bench", "replay"])
def test_unwritable_out_is_one_line_before_any_work(world, tmp_path, capsys, monkeypatch, command, how):
    out = _blocked(tmp_path, how)
    if command == "export" and how == "file":
        out = tmp_path  # a folder where the ONNX file should go
    teacher = str(world / "runs" / "teacher" / "best.pt")

    def reached(*a, **k):
        raise AssertionError("expensive work started before --out was checked")
    argv = {
        "train": ["train", "dropout", "--data", str(world / "data"), "--out", str(out), *TINY],
        "eval": ["eval", "--checkpoint", teacher, "--data", str(world / "data"), "--out", str(out)],
        "export": ["export", "--checkpoint", teacher, "--out", str(out / "m.onnx" if how != "file" else out)],
        "synth": ["synth", "--out", str(out), "--frames", "5", "--sequences", "1", "--no-progress"],
        "bench": ["bench", "--model", teacher, "--out", str(out)],
        "replay": ["replay", str(tmp_path / "bag"), "--model", teacher, "--out", str(out)],
    }[command]
    for target in ["rmmss_core.train.run.build_train_set", "rmmss_core.models.checkpoint.load_model",
                   "rmmss_core.cli.export.load_for_export", "rmmss_core.cli.synth.generate",
                   "rmmss_core.cli.bench.run_matrix", "rmmss_ros.bag.reader.open_bag"]:
        monkeypatch.setattr(target, reached)
    assert rmmss(argv) == 1
    line = _err(capsys)
    assert f"rmmss {command}: error: --out" in line and str(out) in line
    if how == "sysfs":
        assert "not writable" in line
    assert not (tmp_path / "blocker" / "sub").exists()


def test_missing_frame_file_in_a_worker_is_one_line(world, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(world / "data", data)
    victim = sorted((data / "img").rglob("*_rgb_front.png"))[0]
    victim.unlink()
    assert rmmss(["train", "teacher", "--data", str(data), "--out", str(tmp_path / "t"), *TINY,
                  "data.num_workers=2", f"data.train_split={victim.parts[-3]}",
                  f"data.val_split={victim.parts[-3]}"]) == 1
    line = _err(capsys)
    assert str(victim) in line and "missing" in line and "data-loader worker" in line
    assert not (tmp_path / "t").exists()


def test_onnx_file_where_a_checkpoint_is_needed(world, tmp_path, capsys):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x052.4.0:\x00onnx" + bytes(64))
    assert rmmss(["eval", "--checkpoint", str(onnx), "--data", str(world / "data"), "--out",
                  str(tmp_path / "e")]) == 1
    line = _err(capsys)
    assert f"checkpoint {onnx} is an ONNX model, not a PyTorch checkpoint" in line
    assert "weights_only" not in line and not (tmp_path / "e").exists()
    assert _train(world, "anyseg", tmp_path / "r", "--teacher", str(onnx)) == 1
    assert "--teacher: checkpoint" in (line := _err(capsys)) and "is an ONNX model" in line
    assert rmmss(["export", "--checkpoint", str(onnx), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "is an ONNX model" in _err(capsys)


def test_eval_unknown_dataset_name(world, tmp_path, capsys):
    assert rmmss(["eval", "--checkpoint", str(world / "runs" / "teacher" / "best.pt"), "--data",
                  str(world / "data"), "--dataset", "synth", "--out", str(tmp_path / "e")]) == 1
    line = _err(capsys)
    assert "--dataset synth: unknown dataset; valid: deliver, muses, synthetic" in line
    assert not (tmp_path / "e").exists()


# ---------------------------------------------------------------- 5. settings that contradict
def test_warmup_as_long_as_the_run_is_refused(world, tmp_path, capsys):
    assert _train(world, "dropout", tmp_path / "r", "iters=20", "optim.warmup_iters=20") == 1
    assert "optim.warmup_iters=20 is not below iters=20: the whole run would be warm-up" in _err(capsys)
    assert not (tmp_path / "r").exists()


def test_synth_frames_must_be_what_is_written(tmp_path, capsys):
    assert rmmss(["synth", "--out", str(tmp_path / "s"), "--frames", "60", "--size", "64x48"]) == 1
    line = _err(capsys)
    assert "--frames 60" in line and "would write 100" in line and "--frames 100" in line
    assert not (tmp_path / "s").exists()


def test_fsm_refuses_model_options_it_would_ignore(world, tmp_path, capsys):
    runs = world / "runs"
    assert _train(world, "rmmss-fsm", tmp_path / "f", "--teacher", str(runs / "teacher" / "best.pt"),
                  "--robust", str(runs / "hpdm" / "best.pt"), "model.options.size=b0") == 1
    line = _err(capsys)
    assert "model.options.size='b0' does not apply" in line and "size='tiny'" in line


def test_sizes_are_width_x_height_everywhere(world, capsys):
    import argparse

    from rmmss_core.cli import bench, export, info, synth
    p = argparse.ArgumentParser()
    export.add_arguments(p)
    assert p.parse_args(["--checkpoint", "x.pt", "--input-size", "40x32"]).input_size == (32, 40)  # 40 wide
    for module in (synth, export, info, bench):
        p = argparse.ArgumentParser()
        module.add_arguments(p)
        assert "WIDTHxHEIGHT" in p.format_help(), module.__name__
    assert rmmss(["info", "--checkpoint", str(world / "runs" / "teacher" / "best.pt"), "--size", "40x32"]) == 0
    assert "at 40x32 (WxH" in capsys.readouterr().out
    from rmmss_core.deploy.bench import to_markdown
    row = {"backend": "torch", "device": "cpu", "precision": "fp32", "height": 32, "width": 40, "modalities": 4,
           "batch": 1, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "throughput_fps": 1.0}
    assert "| 40x32 |" in to_markdown([row])


def test_synth_size_is_width_by_height_on_disk(world):
    from rmmss_core.data.image_io import read_png
    rgb = read_png(sorted((world / "data" / "img").rglob("*_rgb_front.png"))[0])
    assert rgb.shape[:2] == (48, 64)  # --size 64x48: 64 wide, 48 high


# ---------------------------------------------------------------- 6. smaller
def test_override_typo_is_reported_against_the_flag(world, tmp_path, capsys):
    assert _train(world, "dropout", tmp_path / "r", "itres=5") == 1
    line = _err(capsys)
    assert "override 'itres=5': the config has no key 'itres'; did you mean iters?" in line
    assert "dropout.yaml" not in line
    assert _train(world, "dropout", tmp_path / "r", "optim.lr=fast") == 1
    line = _err(capsys)
    assert "override 'optim.lr=fast'" in line and "dropout.yaml" not in line


@pytest.mark.parametrize("content, expected", [
    (None, "is a folder, not a checkpoint file; did you mean"),
    (b"", "is empty (0 bytes)"),
    (b"hello world\n", "is corrupt or not a PyTorch checkpoint at all (12 bytes starting with b'hello wo')"),
    ("truncated", "is truncated or damaged"),
])
def test_bad_checkpoint_messages_say_what_is_wrong(world, tmp_path, capsys, content, expected):
    path = tmp_path / "bad.pt"
    if content is None:
        path = world / "runs" / "teacher"
    elif content == "truncated":
        path.write_bytes((world / "runs" / "teacher" / "best.pt").read_bytes()[:5000])
    else:
        path.write_bytes(content)
    assert rmmss(["info", "--checkpoint", str(path)]) == 1
    line = _err(capsys)
    assert f"checkpoint {path} {expected}" in line and not line.rstrip().endswith((":", ": 101"))


def test_failed_eval_leaves_no_folder(world, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((world / "runs" / "teacher" / "best.pt").read_bytes()[:5000])
    out = tmp_path / "e"
    # the first checkpoint evaluates, the second is corrupt: nothing may be left behind
    assert rmmss(["eval", "--checkpoint", str(world / "runs" / "teacher" / "best.pt"), str(bad), "--data",
                  str(world / "data"), "--dataset", "synthetic", "--split", "test", "--protocols", "emm",
                  "--out", str(out), "--no-progress"]) == 1
    assert "is truncated or damaged" in _err(capsys)
    assert not out.exists()


def test_run_folder_has_a_text_log(world):
    text = (world / "runs" / "dropout" / "train.log").read_text()
    assert "run " in text and "started at step 0 of 2" in text
    assert "[val 2] miou_avg=" in text and "new best" in text


def test_eval_progress_has_a_total(world, tmp_path, monkeypatch):
    import rmmss_core.eval.protocols as protocols
    totals = []
    real = protocols.tqdm

    def spy(*a, **k):
        totals.append(k.get("total"))
        return real(*a, **k)
    monkeypatch.setattr(protocols, "tqdm", spy)
    assert rmmss(["eval", "--checkpoint", str(world / "runs" / "teacher" / "best.pt"), "--data", str(world / "data"),
                  "--dataset", "synthetic", "--split", "test", "--protocols", "emm", "--out", str(tmp_path / "e"),
                  "--overlay-samples", "0"]) == 0
    assert totals == [5]  # 5 test frames: the bar knows its end, so it shows the ETA


def test_info_on_an_fsm_student_prints_its_parts(world, capsys):
    assert rmmss(["info", "--checkpoint", str(world / "runs" / "fsm" / "best.pt"), "--size", "40x32"]) == 0
    out = capsys.readouterr().out
    assert "recipe rmmss-fsm" in out
    for role in ("teacher", "robust"):
        line = next(ln for ln in out.splitlines() if ln.startswith(role))
        assert "anymodal tiny fusion=mean" in line and "modalities=rgb,depth,event,lidar classes=25" in line
    assert "fusion= " not in out and "classes=\n" not in out


def test_overlays_have_a_class_legend(world, tmp_path, monkeypatch):
    import matplotlib.figure
    labels = []
    real = matplotlib.figure.Figure.legend

    def spy(self, *a, **k):
        labels.extend(h.get_label() for h in k.get("handles", []))
        return real(self, *a, **k)
    monkeypatch.setattr(matplotlib.figure.Figure, "legend", spy)
    assert rmmss(["eval", "--checkpoint", str(world / "runs" / "teacher" / "best.pt"), "--data", str(world / "data"),
                  "--dataset", "synthetic", "--split", "test", "--protocols", "emm", "--out", str(tmp_path / "e"),
                  "--overlay-samples", "0", "--no-progress"]) == 0
    from rmmss_core.spec import PreprocessSpec
    names = PreprocessSpec().class_names
    assert labels and set(labels) <= set(names)  # the classes shown, by name
    assert (tmp_path / "e" / "overlays_best.png").is_file()


def test_ctrl_c_warning_is_printed_once_with_workers(world, tmp_path):
    out = tmp_path / "t"
    cmd = [sys.executable, "-m", "rmmss_cli", "train", "dropout", "--data", str(world / "data"), "--out",
           str(out), *TINY, "iters=100000", "ckpt_every=1", "data.num_workers=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=ROOT)
    deadline = time.time() + 120
    while not (out / "last.pt").is_file():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.2)
    time.sleep(1.0)  # the data-loader workers are up
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert output.count("checkpointing and stopping after this step") == 1, output


def test_readme_documents_every_train_option():
    import argparse

    from rmmss_core.cli import train
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    readme = (ROOT / "README.md").read_text()
    row = next(ln for ln in readme.splitlines() if ln.startswith("| `rmmss train"))
    flags = [o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert flags and all(f in row for f in flags), [f for f in flags if f not in row]



def test_bench_checks_the_runtime_before_any_export(world, tmp_path, capsys, monkeypatch):
    """Found by a new user: `rmmss bench --backends tensorrt` without TensorRT exported ONNX for
    ~10 s, then failed and left onnx-cache/ behind. The runtime is checked first; nothing is left."""
    import importlib.util

    import rmmss_core.cli.bench as bench_cli
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else real(name, *a))
    monkeypatch.setattr(bench_cli, "run_matrix", lambda *a, **k: pytest.fail("benchmark ran before the check"))
    out = tmp_path / "b"
    assert rmmss(["bench", "--model", str(world / "runs" / "dropout" / "best.pt"), "--backends",
                  "torch,tensorrt", "--sizes", "40x32", "--out", str(out)]) == 1
    assert "--backends tensorrt: TensorRT is not installed" in _err(capsys)
    assert not out.exists()


def test_bench_failure_leaves_no_partial_output(world, tmp_path, capsys, monkeypatch):
    import rmmss_core.cli.bench as bench_cli

    def half_done(*a, cache_dir, **k):
        cache_dir.mkdir(parents=True)
        (cache_dir / "student.onnx").write_bytes(b"x")
        raise RuntimeError("backend onnxruntime: session failed")
    monkeypatch.setattr(bench_cli, "run_matrix", half_done)
    out = tmp_path / "b"
    assert rmmss(["bench", "--model", str(world / "runs" / "dropout" / "best.pt"), "--sizes", "40x32",
                  "--out", str(out)]) == 1
    assert "session failed" in _err(capsys)
    assert not out.exists()


@pytest.mark.parametrize("argv, names", [
    (["train", "techer", "--data", "d", "--out", "o"], ["rmmss train: error: argument recipe", "'techer'"]),
    (["bag", "replay", "b"], ["rmmss bag: error:", "'replay'"]),
    (["tain"], ["rmmss: error: unknown command 'tain'", "did you mean 'train'"]),
    (["replay", "b", "--model", "m.pt", "--overlays", "-1"], ["rmmss replay: error: argument --overlays",
                                                              "expected a whole number >= 0, got -1"]),
    (["synth", "--out", "o", "--size", "10by10"], ["rmmss synth: error: argument --size", "WIDTHxHEIGHT"]),
])
def test_argument_mistakes_are_one_line(argv, names, capsys):
    """Found by a new user: argparse printed its usage block before the error (several lines)."""
    with pytest.raises(SystemExit) as e:
        assert rmmss(argv) == 2  # unknown commands return, argparse mistakes exit
        raise SystemExit(2)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert all(n in err for n in names), err


def test_synth_warns_when_a_split_gets_no_frames(tmp_path, capsys):
    """Found by a new user: `synth --frames 10 --sequences 1` put every frame in train, and `train`
    later failed with 'no labelled frames for split val' without naming the cause."""
    assert rmmss(["synth", "--out", str(tmp_path / "d"), "--frames", "5", "--size", "40x32", "--sequences", "1",
                  "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "--sequences 1: split(s) test, val get no frames" in err and "--sequences >= 3" in err


def test_top_level_help_names_every_bag_subcommand(capsys):
    """`rmmss --help` described `bag` as 'write a sequence' only: `bag info` / `bag compress` could
    not be found from it."""
    import argparse

    from rmmss_ros.bag import cli as bag_cli

    assert rmmss(["--help"]) in (0, None)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("bag "))
    p = argparse.ArgumentParser()
    bag_cli.add_arguments(p)
    subs = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subs) == {"write", "compress", "info"}
    for sub in subs:
        assert sub in line, line
