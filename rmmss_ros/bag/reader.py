"""Read a rosbag2 robustly: what is readable is returned, what is not is reported clearly.

``open_bag(path)`` accepts a bag folder (with or without ``metadata.yaml``) or a bare ``.mcap`` /
``.db3`` file (``.zstd``-compressed too). An intact bag is read with rosbags' indexed reader,
which handles split bags (every file of metadata.yaml, in time order) and both rosbag2
compression modes (``file``: ``NAME_0.mcap.zstd``; ``message``). A truncated or corrupt one
(missing footer, half-written chunk, malformed sqlite pages) is salvaged: records are scanned from
the start and every complete message is kept; ``BagReader.problems`` says what was lost. A folder
without metadata.yaml is scanned the same way, *all* its storage files (rosbag2's
``NAME_<i>`` split order), merged by receive time; ``.zstd`` files are decompressed to a temporary
file first. Unusual but valid metadata (an empty ``storage_identifier``: inferred from the file
extension, as rosbag2 does) is read normally; what rmmss cannot read (another serialization
format, an unknown compression or storage plugin, a newer metadata version) raises
``BagError("... unsupported ...")`` instead of being called corrupt.
"""
from __future__ import annotations

import heapq
import io
import logging
import re
import shutil
import sqlite3
import struct
import tempfile
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
    files: list[Path] = field(default_factory=list)  # salvaged: every storage file, in split order
    reader_path: Path | None = None  # indexed: the folder rosbags reads (a normalised copy if needed)
    scan_reason: str = ""  # salvaged: why (no metadata.yaml, a bare storage file, truncated or corrupt)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all if None) in bag order; stops cleanly at corruption."""
        wanted = None if topics is None else set(topics)
        try:
            if self.salvaged:
                files = self.files or [self.path]
                scans = [_scan_mcap(f) if f.suffix == ".mcap" else _scan_sqlite(f) for f in files]
                source = scans[0] if len(scans) == 1 else heapq.merge(*scans, key=lambda m: m.log_ns)
                for msg in source:
                    if wanted is None or msg.topic in wanted:
                        yield msg
            else:
                with Reader(self.reader_path or self.path) as reader:
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

    def salvage_text(self) -> str:
        """Why the bag was read by scanning its files: the reason it was (no metadata.yaml, a bare
        storage file, or metadata rosbags cannot open) and whether records were lost."""
        reasons = [self.scan_reason or "truncated or corrupt"]
        if reasons[0] != "truncated or corrupt" and any("corrupt or truncated" in p or "ends early" in p
                                                           for p in self.problems):
            reasons.append("truncated or corrupt")
        return "; ".join(reasons)

    def describe(self) -> str:
        """A ``ros2 bag info``-like summary."""
        files = ", ".join(f.name for f in self.files) if len(self.files) > 1 else str(self.path)
        lines = [f"Files:             {files}", f"Storage id:        {self.storage}"
                 + (f" (salvaged: {self.salvage_text()})" if self.salvaged else ""),
                 f"Duration:          {(self.end_ns - self.start_ns) / 1e9:.3f}s",
                 f"Messages:          {sum(self.counts.values())}", "Topic information:"]
        for topic, msgtype in sorted(self.topics.items()):
            lines.append(f"  Topic: {topic} | Type: {msgtype} | Count: {self.counts.get(topic, 0)}")
        lines += [f"Problem: {p}" for p in self.problems]
        return "\n".join(lines)


def open_bag(path: str | Path) -> BagReader:
    """Open a bag; BagError (a ValueError) with the reason if nothing at all is readable, or
    "unsupported ..." when the bag is valid but of a kind rmmss cannot read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist")
    if path.is_dir() and (path / "metadata.yaml").is_file():
        reader_path = _readable_folder(path)
        try:
            with Reader(reader_path) as reader:
                storage = "mcap" if any(".mcap" in f.name for f in path.iterdir()) else "sqlite3"
                return BagReader(path, storage, {c.topic: c.msgtype for c in reader.connections},
                                 {c.topic: c.msgcount for c in reader.connections},
                                 reader.start_time, reader.end_time, custom=_custom_data(path),
                                 reader_path=reader_path)
        except ReaderError as e:
            if _unsupported(str(e)):
                raise BagError(f"bag {path}: unsupported by rmmss (rosbags): {e}") from None
            problem = f"bag {path}: rosbags cannot open it ({e}); salvaging readable messages"
        except (sqlite3.DatabaseError, struct.error, KeyError, ValueError) as e:
            problem = f"bag {path}: rosbags cannot open it ({e}); salvaging readable messages"
        files = _storage_files(path)
        reason = "truncated or corrupt"
    else:
        files = _storage_files(path)
        reason = "no metadata.yaml" if path.is_dir() else "a bare storage file"

        problem = (f"bag {path}: no metadata.yaml; scanning {len(files)} storage file(s) directly "
                   f"({', '.join(f.name for f in files)})" if path.is_dir() else
                   f"bag {path}: a bare storage file; scanning it directly")
    log.warning(problem)
    problems = [problem]
    files = [_decompressed(f, problems) for f in files]
    storage = "mcap" if files[0].suffix == ".mcap" else "sqlite3"
    bag = BagReader(files[0], storage, {}, {}, 0, 0, salvaged=True, problems=problems,
                    custom=_custom_data(path) if path.is_dir() else {}, files=files, scan_reason=reason)
    _index_salvaged(bag)
    return bag


def _unsupported(text: str) -> bool:
    """rosbags' wording for a valid bag of a kind it does not read (not damage)."""
    return "not supported" in text or "Unrecognized storage format" in text


def _readable_folder(path: Path) -> Path:
    """The folder itself, or for metadata with an empty ``storage_identifier`` (older rosbag2
    writers and hand-made bags; rosbag2 infers the plugin from the file extension) a temporary
    copy of metadata.yaml naming the plugin, next to links to the storage files. Raises
    BagError for a serialization format other than CDR."""
    try:
        meta = yaml.safe_load((path / "metadata.yaml").read_text())
        info = meta["rosbag2_bagfile_information"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise BagError(f"bag {path}: metadata.yaml is unreadable or not rosbag2 metadata ({e})") from None
    formats = {str(t.get("topic_metadata", {}).get("serialization_format", "cdr"))
               for t in info.get("topics_with_message_count") or [] if isinstance(t, dict)}
    other = sorted(f for f in formats if f != "cdr")
    if other:
        raise BagError(f"bag {path}: unsupported serialization format {other} (rmmss reads ROS 2 CDR bags)")
    if str(info.get("storage_identifier", "")).strip():
        return path
    files = [str(f) for f in info.get("relative_file_paths") or []]
    kinds = {"mcap" if ".mcap" in f else "sqlite3" if ".db3" in f else "?" for f in files}
    if len(kinds) != 1 or "?" in kinds:
        raise BagError(f"bag {path}: empty storage_identifier and files {files} do not name one storage "
                       "plugin (.mcap or .db3): unsupported")
    log.info("bag %s: empty storage_identifier; using %s from the file extension", path, next(iter(kinds)))
    info["storage_identifier"] = next(iter(kinds))
    tmp = Path(tempfile.mkdtemp(prefix="rmmss_bag_"))
    for f in files:
        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp / f).symlink_to((path / f).resolve())
    (tmp / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return tmp


def _custom_data(folder: Path) -> dict[str, str]:
    """``custom_data`` of metadata.yaml (empty if absent or unreadable)."""
    try:
        meta = yaml.safe_load((folder / "metadata.yaml").read_text())
        return dict(meta["rosbag2_bagfile_information"].get("custom_data") or {})
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}


_STORAGE_SUFFIXES = (".mcap", ".db3", ".mcap.zstd", ".db3.zstd")


def _split_index(p: Path) -> tuple[str, int, str]:
    """Sort key: rosbag2 names split files ``NAME_<i>.ext``; numeric order (``_10`` after ``_9``)."""
    stem = p.name.split(".")[0]
    m = re.match(r"(.*?)_(\d+)$", stem)
    return (m.group(1), int(m.group(2)), p.name) if m else (stem, -1, p.name)


def _storage_files(path: Path) -> list[Path]:
    """The storage files of a bag folder (split order) or the bare file itself."""
    if path.is_file():
        if not path.name.endswith(_STORAGE_SUFFIXES):
            raise BagError(f"{path} is not a rosbag2 storage file (.mcap or .db3, optionally .zstd)")
        return [path]
    files = sorted((f for f in path.iterdir() if f.is_file() and f.name.endswith(_STORAGE_SUFFIXES)),
                   key=_split_index)
    if not files:
        raise BagError(f"{path} holds no .mcap or .db3 file (nor .mcap.zstd / .db3.zstd): not a rosbag2 folder")
    kinds = {".mcap" in f.name for f in files}
    if len(kinds) > 1:
        raise BagError(f"{path} mixes .mcap and .db3 files ({[f.name for f in files]}): unsupported")
    return files


def _decompressed(f: Path, problems: list[str]) -> Path:
    """A ``.zstd`` storage file decompressed to a temporary file (as rosbag2's file compression
    mode writes them); other files as they are."""
    if f.suffix != ".zstd":
        return f
    try:  # the zstd module rosbags itself uses (Python 3.14's, or its backport)
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd

    out = Path(tempfile.mkdtemp(prefix="rmmss_bag_")) / f.name[: -len(".zstd")]
    try:
        with zstd.open(f, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (zstd.ZstdError, EOFError) as e:
        problems.append(f"bag file {f.name}: zstd stream ends early or is corrupt ({e}); reading what was decompressed")
    return out


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
