"""Shared contracts: modalities and subsets, the preprocessing spec, atomic IO, typed configs, CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from rmmss_core.modalities import (
    MODALITIES,
    SUBSET_NAMES,
    SUBSETS,
    check_mask,
    parse_subset,
    random_anymodal_mask,
    subset_mask,
    subset_name,
)
from rmmss_core.spec import Normalization, PreprocessSpec
from rmmss_core.utils.config import ConfigError, dump_config, load_config
from rmmss_core.utils.io import (
    CheckpointError,
    atomic_open,
    atomic_torch_save,
    atomic_write_text,
    load_checkpoint,
)


def test_fifteen_subsets_in_canonical_order():
    assert MODALITIES == ("rgb", "depth", "event", "lidar")
    assert len(SUBSETS) == 15 and len(set(SUBSETS)) == 15
    assert SUBSET_NAMES[:4] == ("R", "D", "E", "L") and SUBSET_NAMES[-1] == "RDEL"
    assert [len(s) for s in SUBSETS] == sorted(len(s) for s in SUBSETS)


@pytest.mark.parametrize("name", SUBSET_NAMES)
def test_subset_names_round_trip(name):
    idx = parse_subset(name)
    assert subset_name(idx) == name
    mask = subset_mask(name, batch=3)
    assert mask.shape == (3, 4) and mask.dtype == torch.bool
    assert subset_name(mask[0]) == name


def test_parse_subset_accepts_modality_names_and_rejects_garbage():
    assert parse_subset("rgb,lidar") == (0, 3)
    with pytest.raises(ValueError, match="unknown modality 'radar'"):
        parse_subset("rgb,radar")
    with pytest.raises(ValueError, match="bad subset"):
        parse_subset("RX")


def test_anymodal_dropout_distribution():
    g = torch.Generator().manual_seed(0)
    m = random_anymodal_mask(40000, generator=g)
    assert m.any(dim=1).all()
    k = m.sum(dim=1)
    # k ~ U{1..4}: each size about a quarter of the samples
    freq = torch.bincount(k, minlength=5)[1:].float() / len(k)
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.02)
    # given k, every modality is equally likely
    per_mod = m.float().mean(dim=0)
    assert torch.allclose(per_mod, torch.full((4,), per_mod.mean().item()), atol=0.02)


def test_check_mask_rejects_empty_rows_and_bad_shapes():
    with pytest.raises(ValueError, match="at least one"):
        check_mask(torch.tensor([[True, False, False, False], [False] * 4]))
    with pytest.raises(ValueError, match="B x 4"):
        check_mask(torch.ones(2, 3, dtype=torch.bool))


def test_spec_round_trips_and_validates():
    spec = PreprocessSpec.for_class_set("muses", input_size=(128, 160))
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    assert spec.num_classes == 19
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalization((0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError, match="unknown preprocessing spec keys"):
        PreprocessSpec.from_dict({**spec.to_dict(), "bogus": 1})


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]  # no temporary left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_checkpoint_loading_is_safe_and_explains_errors(tmp_path):
    good = tmp_path / "good.pt"
    atomic_torch_save({"w": torch.ones(2)}, good)
    assert torch.equal(load_checkpoint(good)["w"], torch.ones(2))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt is corrupt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")

    evil = tmp_path / "evil.pt"  # arbitrary pickled objects must be refused (weights_only=True)
    torch.save({"x": _Evil()}, evil)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)


class _Evil:
    pass


@dataclass(frozen=True)
class _Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class _Cfg:
    name: str = "run"
    steps: int = 10
    optim: _Optim = field(default_factory=_Optim)


def test_typed_config_overlay_and_dump(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("steps: 20\noptim:\n  lr: 0.01\n")
    cfg = load_config(_Cfg, yml, ["optim.betas=[0.8, 0.9]", "name=x"])
    assert cfg == _Cfg(name="x", steps=20, optim=_Optim(lr=0.01, betas=(0.8, 0.9)))
    dump_config(cfg, tmp_path / "out.yaml")
    assert load_config(_Cfg, tmp_path / "out.yaml") == cfg
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(_Cfg, None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config(_Cfg, None, ["steps=many"])


def test_cli_lists_commands_and_rejects_unknown():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "rmmss_cli", "--help"], capture_output=True,
                         text=True, cwd=root, timeout=60)
    assert out.returncode == 0
    for cmd in ("synth", "train", "eval", "export", "bench", "bag", "replay", "play", "demo"):
        assert f"  {cmd} " in out.stdout
    out = subprocess.run([sys.executable, "-m", "rmmss_cli", "frobnicate"], capture_output=True,
                         text=True, cwd=root, timeout=60)
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr


def test_rmmss_is_assembled_from_both_packages_in_the_order_users_know():
    """One CLI above both packages: the core's table names no ROS module, the ROS package adds its
    own, and ``rmmss --help`` lists the same commands in the same order as before the split."""
    from rmmss_cli import COMMANDS
    from rmmss_core.cli import COMMANDS as CORE
    from rmmss_ros.commands import COMMANDS as ROS

    assert list(COMMANDS) == ["synth", "train", "eval", "benchmark", "import", "info", "export", "bench", "gpu-check",
                              "bag", "replay", "play", "demo"]
    assert all(module.startswith("rmmss_core.") for module, _ in CORE.values())
    assert all(module.startswith("rmmss_ros.") for module, _ in ROS.values())
    assert COMMANDS["gpu-check"][0] == "rmmss_ros.bench.gpu_check"  # the node step comes with it
    assert COMMANDS["gpu-check"][1] == CORE["gpu-check"][1]
    import importlib
    for module, _ in COMMANDS.values():
        spec = importlib.util.find_spec(module)
        assert spec is not None, module


def test_the_core_cli_alone_serves_the_core_commands(capsys):
    from rmmss_core.cli import main

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert "  train " in listed and "  demo " not in listed
    assert main(["demo"]) == 2
    assert "unknown command 'demo'" in capsys.readouterr().err


def test_cli_error_without_message_still_says_what_failed(monkeypatch, capsys):
    import types

    import rmmss_core.cli as cli

    def run(args):
        raise RuntimeError()

    fake = types.SimpleNamespace(add_arguments=lambda parser: None, run=run)
    monkeypatch.setitem(cli.COMMANDS, "boom", ("fake_module", "raises"))
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: fake)
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert "rmmss boom: error: RuntimeError" in err and "--log-level DEBUG" in err
