from __future__ import annotations

import pytest

from rmmss_cli import main
from rmmss_core.models import create_model, save_model_checkpoint
from rmmss_core.spec import PreprocessSpec


def test_info_prints_params_and_published_check(capsys):
    assert main(["info", "--model", "b0", "--modalities", "1", "--classes", "150", "--size", "512x512"]) == 0
    out = capsys.readouterr().out
    assert "params     3.753 M" in out and "GMACs      8.42" in out and "OK" in out


def test_info_on_a_checkpoint(tmp_path, capsys):
    path = tmp_path / "m.pt"
    model = create_model("anymodal", size="tiny", fusion="hub", modalities=["rgb", "lidar"], num_classes=5)
    save_model_checkpoint(path, model, PreprocessSpec())
    assert main(["info", "--checkpoint", str(path), "--size", "64x96"]) == 0
    out = capsys.readouterr().out
    assert "fusion=hub" in out and "modalities=rgb,lidar" in out and "at 64x96" in out


@pytest.mark.parametrize("args", [["--size", "512"], ["--modalities", "7"], ["--modalities", "RX"]])
def test_info_rejects_bad_options(args, capsys):
    assert main(["info", "--model", "tiny", *args]) == 1
    assert "error" in capsys.readouterr().err
