"""Checks every command runs before its expensive work, and the one-line form of an error.

    check_out_dir(args.out)            # before loading models or data: can OUT be created and written?
    check_out_file(args.out / "x.onnx")
    one_line(exc)                      # "what is wrong" for ``rmmss <cmd>: error: ...``

Nothing here creates anything: a command that fails leaves no partial output behind.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path cannot be written (a file in the way, no permission)."""


def _first_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Raise OutputError unless ``path`` is (or can be created as) a writable folder.

    Checks the path itself and its first existing ancestor: a file in the way
    (``NotADirectoryError``/``FileExistsError`` later) or a folder without write permission
    (``PermissionError`` later) is reported now, naming the flag and the path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: a file is in the way (expected a folder)")
    anchor = _first_existing(path)
    if not anchor.is_dir():
        raise OutputError(f"{flag} {path}: {anchor} is a file, so the folder cannot be created")
    what = "is not writable" if anchor == path else f"cannot be created: {anchor} is not writable"
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path} {what} (permission denied)")
    try:  # root passes os.access everywhere; a read-only mount or sysfs still refuses: probe it
        fd, probe = tempfile.mkstemp(prefix=".rmmss-write-probe-", dir=anchor)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{flag} {path} {what} ({e.strerror or type(e).__name__})") from None
    return path


def check_out_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Raise OutputError unless the file ``path`` can be written (its folder created if needed)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{flag} {path} exists and is not writable (permission denied)")
    parent = path.parent if str(path.parent) else Path(".")
    check_out_dir(parent, flag=f"{flag} {path}: folder")
    return path


_WORKER = re.compile(r"Caught (\w+) in DataLoader worker process \d+")


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line.

    A DataLoader worker's error arrives re-raised with the worker's traceback in its message; the
    useful line is the last one (``module.Error: <message>``), kept without the type prefix.
    ``OSError`` becomes ``<path>: <reason>``; a ``KeyError`` loses its quotes.
    """
    if isinstance(exc, OSError) and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
        return f"{target}: {exc.strerror or type(exc).__name__}"
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) else str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return f"{type(exc).__name__} (no message; rerun with --log-level DEBUG for the traceback)"
    if _WORKER.search(lines[0]) and len(lines) > 1:
        last = lines[-1]
        head, sep, rest = last.partition(": ")
        if sep and re.fullmatch(r"[\w.]+", head):
            last = rest
        return f"{last} (in a data-loader worker)"
    return " ".join(lines)
