"""Atomic file writes and safe checkpoint loading.

Every file rmmss writes goes through a temporary file in the same folder, fsync, then
``os.replace``: an interrupted write never leaves a truncated file behind.
``torch.load`` is always called with ``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; finished files get the usual 0666 & ~umask (readable by the team)
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[io.IOBase]:
    """Open a temporary file beside ``path``; on success it atomically replaces ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), got mode {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through a temporary file and os.replace."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or of the wrong kind."""


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """``torch.load(path, weights_only=True)`` with errors that name the file and the problem.

    Raises CheckpointError: missing file, a folder (with the ``best.pt`` it may hold), an empty or
    truncated file, an ONNX model or another kind of file, objects beyond weights_only's
    allow-list, or a file that does not hold a dict.
    """
    path = Path(path)
    if path.is_dir():
        hint = [p.name for p in (path / "best.pt", path / "last.pt") if p.is_file()]
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file"
                              + (f"; did you mean {path / hint[0]}?" if hint else ""))
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling error means a bad file
        raise CheckpointError(f"checkpoint {path} {_diagnose(path, e)}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def _diagnose(path: Path, error: Exception) -> str:
    """Why ``torch.load`` failed on ``path``, in words (torch's own messages are often ``: 101``)."""
    import zipfile
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    if size == 0:
        return "is empty (0 bytes): an interrupted copy or save?"
    if path.suffix.lower() == ".onnx" or (head[:1] == b"\x08" and b"onnx" in head.lower()):
        return ("is an ONNX model, not a PyTorch checkpoint: give the .pt file it was exported from "
                "(ONNX files are read by rmmss bench and the ROS node)")
    if head[:4] == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            return f"is truncated or damaged ({size} bytes, its zip index is missing): an interrupted copy?"
        if "weights only" in str(error).lower() or "weights_only" in str(error):
            return ("holds Python objects beyond plain tensors and containers, which rmmss does not load "
                    "(torch.load(weights_only=True)); re-save it with rmmss")
        return f"is a zip file but not a readable PyTorch checkpoint ({type(error).__name__})"
    if head[:1] == b"\x80":
        return "is a legacy pickle file that is damaged or holds objects rmmss does not load (weights_only=True)"
    return f"is corrupt or not a PyTorch checkpoint at all ({size} bytes starting with {head[:8]!r})"
