"""Read a rosbag2 robustly: what is readable is returned, what is not is reported clearly.

``open_bag(path)`` accepts a bag folder (with or without ``metadata.yaml``) or a bare ``.mcap`` /
``.db3`` file. An intact bag is read with rosbags' indexed reader. A truncated or corrupt one
(missing footer, half-written chunk, malformed sqlite pages) is salvaged: records are scanned from
the start and every complete message is kept; ``BagReader.problems`` says what was lost.
"""
from __future__ import annotations

import io
import logging
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

log = logging.getLogger(__name__)
MCAP_MAGIC = b"\x89MCAP0\r\n"


class BagError(ValueError):
    """A bag cannot be read at all (missing, not a bag, nothing readable)."""


@dataclass(frozen=True)
class BagMessage:
    """One message: topic, type name, receive (log) time in ns, CDR bytes."""

    topic: str
    msgtype: str
    log_ns: int
    raw: bytes


@dataclass
class BagReader:
    """An opened bag. ``topics``: topic -> type; ``problems``: what could not be read."""

    path: Path
    storage: str
    topics: dict[str, str]
    counts: dict[str, int]
    start_ns: int
    end_ns: int
    salvaged: bool = False
    problems: list[str] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all if None) in bag order; stops cleanly at corruption."""
        wanted = None if topics is None else set(topics)
        try:
            if self.salvaged:
                source = _scan_mcap(self.path) if self.storage == "mcap" else _scan_sqlite(self.path)
                for msg in source:
                    if wanted is None or msg.topic in wanted:
                        yield msg
            else:
                with Reader(self.path) as reader:
                    conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
                    for conn, t, raw in reader.messages(connections=conns):
                        yield BagMessage(conn.topic, conn.msgtype, t, bytes(raw))
        except (ReaderError, _Truncated, sqlite3.DatabaseError, struct.error, OSError) as e:
            problem = f"bag {self.path}: stopped reading at a corrupt or truncated record ({e})"
            if problem not in self.problems:
                log.warning(problem)
                self.problems.append(problem)

    def require(self, topics: dict[str, str | tuple[str, ...]]) -> list[str]:
        """Check topics against expected types; returns the missing topics, raises on wrong types."""
        missing = []
        for topic, types in topics.items():
            types = (types,) if isinstance(types, str) else tuple(types)
            if topic not in self.topics:
                missing.append(topic)
            elif self.topics[topic] not in types:
                raise BagError(f"bag {self.path}: topic {topic} has type {self.topics[topic]}, "
                               f"expected {' or '.join(types)}")
        return missing

    def describe(self) -> str:
        """A ``ros2 bag info``-like summary."""
        lines = [f"Files:             {self.path}", f"Storage id:        {self.storage}"
                 + (" (salvaged: truncated or corrupt)" if self.salvaged else ""),
                 f"Duration:          {(self.end_ns - self.start_ns) / 1e9:.3f}s",
                 f"Messages:          {sum(self.counts.values())}", "Topic information:"]
        for topic, msgtype in sorted(self.topics.items()):
            lines.append(f"  Topic: {topic} | Type: {msgtype} | Count: {self.counts.get(topic, 0)}")
        lines += [f"Problem: {p}" for p in self.problems]
        return "\n".join(lines)


def open_bag(path: str | Path) -> BagReader:
    """Open a bag; BagError (a ValueError) with the reason if nothing at all is readable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist")
    storage_file = _storage_file(path)
    storage = "mcap" if storage_file.suffix == ".mcap" else "sqlite3"
    if path.is_dir() and (path / "metadata.yaml").is_file():
        try:
            with Reader(path) as reader:
                return BagReader(path, storage, {c.topic: c.msgtype for c in reader.connections},
                                 {c.topic: c.msgcount for c in reader.connections},
                                 reader.start_time, reader.end_time, custom=_custom_data(path))
        except (ReaderError, sqlite3.DatabaseError, struct.error, KeyError, ValueError) as e:
            problem = f"bag {path}: rosbags cannot open it ({e}); salvaging readable messages"
    else:
        problem = f"bag {path}: no metadata.yaml; scanning {storage_file.name} directly"
    log.warning(problem)
    bag = BagReader(storage_file, storage, {}, {}, 0, 0, salvaged=True, problems=[problem],
                    custom=_custom_data(path) if path.is_dir() else {})
    _index_salvaged(bag)
    return bag


def _custom_data(folder: Path) -> dict[str, str]:
    """``custom_data`` of metadata.yaml (empty if absent or unreadable)."""
    try:
        meta = yaml.safe_load((folder / "metadata.yaml").read_text())
        return dict(meta["rosbag2_bagfile_information"].get("custom_data") or {})
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}


def _storage_file(path: Path) -> Path:
    if path.is_file():
        if path.suffix not in (".mcap", ".db3"):
            raise BagError(f"{path} is not a rosbag2 storage file (.mcap or .db3)")
        return path
    files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
    if not files:
        raise BagError(f"{path} holds no .mcap or .db3 file: not a rosbag2 folder")
    if len(files) > 1:
        log.warning("bag %s has %d storage files; reading %s", path, len(files), files[0].name)
    return files[0]


def _index_salvaged(bag: BagReader) -> None:
    """Fill topics, counts and times of a salvaged bag by one scan."""
    start, end = None, None
    for msg in bag.messages():
        bag.topics.setdefault(msg.topic, msg.msgtype)
        bag.counts[msg.topic] = bag.counts.get(msg.topic, 0) + 1
        start = msg.log_ns if start is None else min(start, msg.log_ns)
        end = msg.log_ns if end is None else max(end, msg.log_ns)
    if start is None:
        raise BagError(f"bag {bag.path}: no readable message ({'; '.join(bag.problems)})")
    bag.start_ns, bag.end_ns = start, end


class _Truncated(Exception):
    """A record runs past the end of the data."""


def _take(bio: io.BytesIO | io.BufferedReader, n: int) -> bytes:
    data = bio.read(n)
    if len(data) != n:
        raise _Truncated(f"record needs {n} bytes, {len(data)} left")
    return data


def _string(bio) -> str:
    (n,) = struct.unpack("<I", _take(bio, 4))
    return _take(bio, n).decode("utf-8", errors="replace")


def _scan_mcap(path: Path) -> Iterator[BagMessage]:
    """Every complete message of an MCAP file in file order, chunk by chunk."""
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    with open(path, "rb") as f:
        if f.read(8) != MCAP_MAGIC:
            raise BagError(f"{path} is not an MCAP file (bad magic)")
        yield from _scan_records(f, schemas, channels, top=True)


def _scan_records(bio, schemas: dict[int, str], channels: dict[int, tuple[str, str]],
                  top: bool) -> Iterator[BagMessage]:
    while True:
        op = bio.read(1)
        if not op:
            if top:
                raise _Truncated("file ends without an MCAP data-end record")
            return
        (length,) = struct.unpack("<Q", _take(bio, 8))
        if op[0] == 0x0F or op[0] == 0x02:  # data end or footer: the data section is complete
            return
        raw = bio.read(length)
        if len(raw) < length and op[0] != 0x06:
            raise _Truncated(f"record needs {length} bytes, {len(raw)} left")
        body = io.BytesIO(raw)
        if op[0] == 0x03:
            (sid,) = struct.unpack("<H", _take(body, 2))
            schemas[sid] = _string(body)
        elif op[0] == 0x04:
            cid, sid = struct.unpack("<HH", _take(body, 4))
            channels[cid] = (_string(body), schemas.get(sid, "__unknown__"))
        elif op[0] == 0x05:
            cid, _seq, log_ns, _pub = struct.unpack("<HIQQ", _take(body, 22))
            if cid in channels:
                topic, msgtype = channels[cid]
                yield BagMessage(topic, msgtype, log_ns, body.read())
        elif op[0] == 0x06:
            # a cut chunk: an uncompressed one still yields its complete messages
            _s, _e, usize, crc = struct.unpack("<QQQI", _take(body, 28))
            compression = _string(body)
            (csize,) = struct.unpack("<Q", _take(body, 8))
            data = body.read(csize)
            if compression:
                from rosbags.rosbag2.storage_mcap import decompress
                data = decompress(_take(io.BytesIO(data), csize), compression, usize, crc)
            yield from _scan_records(io.BytesIO(data), schemas, channels, top=False)
            if len(raw) < length:
                raise _Truncated(f"chunk needs {length} bytes, {len(raw)} left")


def _scan_sqlite(path: Path) -> Iterator[BagMessage]:
    """Messages of a rosbag2 sqlite3 file row by row, until the first unreadable page."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        topics = {tid: (name, mtype) for tid, name, mtype in con.execute("SELECT id, name, type FROM topics")}
        for tid, t, data in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            if tid in topics:
                yield BagMessage(topics[tid][0], topics[tid][1], int(t), bytes(data))
    finally:
        con.close()
