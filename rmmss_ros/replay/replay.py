"""Offline, deterministic evaluation of a bag through exactly the node's processing, without DDS.

The node's own pieces are reused: :class:`rmmss_ros.sync.synchronizer.Synchronizer` (driven by an injected clock
that follows the bag's receive times, so deadlines fire as they would live), the
:class:`rmmss_ros.pipeline.pipeline.Pipeline` (conversions, shared encoders, preprocess, backend) and the
node's parameter table (:mod:`rmmss_ros.node.params`). A :class:`~rmmss_ros.replay.schedule.Schedule`
drops or corrupts sensors on bag time. Masks are compared with the label topic (mono8, stamped like
the camera frame it labels) per availability pattern.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rmmss_core.modalities import MODALITIES
from rmmss_ros.bag import messages as M
from rmmss_ros.bag.reader import BagError, BagReader, open_bag
from rmmss_ros.conversions.transport import resolve_transport, transport_mismatch
from rmmss_ros.node import params as P
from rmmss_ros.outputs.usability import split_unusable
from rmmss_ros.replay.report import ReplayStats
from rmmss_ros.replay.schedule import Schedule
from rmmss_ros.sync.synchronizer import make_synchronizer
from rmmss_ros.tf.buffer import TF_STATIC_TOPIC, TF_TOPIC, TransformBuffer

log = logging.getLogger(__name__)
EXPECTED_TYPES: dict[str, tuple[str, ...]] = {"rgb": (M.IMAGE, M.COMPRESSED_IMAGE), "depth": (M.IMAGE, M.COMPRESSED_IMAGE),
                                              "event": (M.IMAGE, M.COMPRESSED_IMAGE, M.POINTCLOUD2, M.EVENT_PACKET),
                                              "lidar": (M.POINTCLOUD2,)}
LABEL_TOPIC = "/labels/semantic"


def topic_name(name: str) -> str:
    """A node-relative topic (``camera/image_raw``) as the bag records it (``/camera/image_raw``)."""
    return name if name.startswith("/") else "/" + name


@dataclass
class ReplayResult:
    """Stats (mIoU etc.), the masks per frame stamp, and what went wrong on the way."""

    stats: ReplayStats
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    used: dict[int, tuple[str, ...]] = field(default_factory=dict)
    emit_ns: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    unusable: dict[str, int] = field(default_factory=dict)  # "lidar: waiting for camera_info" -> frame sets
    error_text: dict[str, str] = field(default_factory=dict)  # errors' key -> the last error's text
    problems: list[str] = field(default_factory=list)


class Replayer:
    """``Replayer(pipeline, values).run(bag, schedule) -> ReplayResult``.

    A mask is scored against the label with its exact stamp, or (for sets stamped by fallback
    rate ticks while the reference sensor is dead) the nearest label within ``label_tolerance_s``.

    ``pipeline``: a :class:`rmmss_ros.pipeline.pipeline.Pipeline` (the node's object); ``values``: the
    node's flat parameter values (defaults from rmmss_ros.node.params, overridden by the caller).
    """

    def __init__(self, pipeline: Any, values: Mapping[str, Any] | None = None, label_topic: str = LABEL_TOPIC,
                 max_overlays: int = 6, label_tolerance_s: float = 0.05):
        self.pipeline = pipeline
        self.values = {**P.defaults(), **(values or {})}
        reasons = [r for r in P.validate({**self.values, "model_path": "x"}) if "model_path" not in r]
        if reasons:
            raise ValueError("bad node parameters: " + "; ".join(reasons))
        self.label_topic = label_topic
        self.max_overlays = max_overlays
        self.label_tolerance_ns = int(label_tolerance_s * 1e9)

    def topics(self, bag: BagReader) -> tuple[dict[str, str], list[str]]:
        """``{bag topic: sensor}`` of the enabled sensors present in the bag, and notes on missing ones.
        Raises BagError when a topic has a type the node cannot take, or no sensor is in the bag."""
        out, notes = {}, []
        for m in MODALITIES:
            if not self.values[f"{m}.enabled"]:
                continue
            topic = topic_name(self.values[f"{m}.topic"])
            if m in ("rgb", "depth") or (m == "event" and self.values["event.format"] == "image"):
                # <sensor>.transport (#22): the raw topic, or image_transport's compressed one in the bag
                r = resolve_transport(m, topic, self.values[f"{m}.transport"],
                                      {t: [ty] for t, ty in bag.topics.items()})
                if r.topic != topic:
                    log.info("%s", r.reason)
                    notes.append(r.reason)
                wrong = transport_mismatch(m, topic, self.values[f"{m}.transport"],
                                           {t: [ty] for t, ty in bag.topics.items()})
                if wrong:
                    log.warning("%s", wrong)
                    notes.append(wrong)
                topic = r.topic
            if topic not in bag.topics:
                notes.append(f"sensor {m}: topic {topic} is not in the bag; it is missing throughout")
                continue
            if bag.topics[topic] not in EXPECTED_TYPES[m]:
                raise BagError(f"bag {bag.path}: {m} topic {topic} has type {bag.topics[topic]}, "
                               f"expected {' or '.join(EXPECTED_TYPES[m])}")
            if bag.topics[topic] == M.EVENT_PACKET and self.values["event.format"] != "packet":
                raise BagError(f"bag {bag.path}: event topic {topic} holds {M.EVENT_PACKET}; replay it with "
                               "--param event.format=packet")
            out[topic] = m
        if not out:
            raise BagError(f"bag {bag.path}: none of the sensor topics "
                           f"{[topic_name(self.values[f'{m}.topic']) for m in MODALITIES]} is in it "
                           f"(bag topics: {sorted(bag.topics)}); remap with --param <sensor>.topic=...")
        return out, notes

    def run(self, bag: str | Path | BagReader, schedule: Schedule | None = None,
            progress: Callable[[int, int], None] | None = None) -> ReplayResult:
        bag = bag if isinstance(bag, BagReader) else open_bag(bag)
        schedule = schedule or Schedule()
        sensor_of, notes = self.topics(bag)
        info_topic = topic_name(self.values["camera_info.topic"])
        has_labels = bag.topics.get(self.label_topic) == M.IMAGE
        if not has_labels:
            notes.append(f"label topic {self.label_topic} is not an Image topic of the bag: no mIoU")
        ref = self.values["reference"]
        ref_topic = next((t for t, m in sensor_of.items() if m == ref), None)
        spec = self.pipeline.spec
        stats = ReplayStats(spec.num_classes, spec.palette, spec.ignore_index, self.max_overlays,
                            notes=notes + list(bag.problems))
        for text in schedule.unreached((bag.end_ns - bag.start_ns) / 1e9):
            log.warning("%s", text)
            stats.notes.append(text)
        stats.expected = (bag.counts.get(ref_topic, 0) if ref != "rate"
                          else int((bag.end_ns - bag.start_ns) / 1e9 * self.values["rate_hz"]))
        result = ReplayResult(stats)
        now = [bag.start_ns]
        sync = make_synchronizer(self.values, lambda: now[0])
        camera_info, labels, frames = None, {}, []
        ev_info = self.values.get("event.camera_info_topic") or ""
        ev_info_topic = topic_name(ev_info) if ev_info else None
        extra = self._robot_inputs(bag, sensor_of, info_topic, stats.notes)  # #22: TF, depth CameraInfo
        wanted = [*sensor_of, info_topic] + ([self.label_topic] if has_labels else []) \
            + ([ev_info_topic] if ev_info_topic in bag.topics else []) + list(extra)
        total = sum(bag.counts.get(t, 0) for t in set(wanted))
        for n, msg in enumerate(bag.messages(wanted)):
            now[0] = msg.log_ns
            for fs in sync.poll():
                frames.append(self._process(fs, camera_info, msg.log_ns, result))
            try:
                decoded = M.deserialize(msg.raw, msg.msgtype)
            except ValueError as e:
                result.errors[msg.topic] = result.errors.get(msg.topic, 0) + 1
                log.warning("bag %s: skipping a message on %s: %s", bag.path, msg.topic, e)
                continue
            if msg.topic in extra:
                extra[msg.topic](decoded)
            elif msg.topic == info_topic:
                camera_info = decoded
            elif msg.topic == ev_info_topic:
                self.pipeline.set_event_camera_info(decoded)
            elif msg.topic == self.label_topic:
                labels[M.stamp_to_ns(decoded.header)] = decoded
            else:
                sensor = sensor_of[msg.topic]
                delivered = schedule.apply(sensor, (msg.log_ns - bag.start_ns) / 1e9, decoded)
                if delivered is not None and sensor == "event" and self.values["event.format"] != "image":
                    self._buffer_events(delivered, result)
                if delivered is not None:
                    for fs in sync.add(sensor, M.stamp_to_ns(delivered.header), delivered):
                        frames.append(self._process(fs, camera_info, msg.log_ns, result))
            if progress is not None:
                progress(n + 1, total)
            frames = self._score(frames, labels, bag.start_ns, result, before_ns=msg.log_ns - 1_000_000_000)
        # let the last deadlines fire: advance bag time past every timeout; sets beyond the bag's
        # end (fallback ticks of a dead reference) are not part of the recording
        last = now[0]
        horizon = last + int((max(self.values[f"{m}.timeout_s"] for m in MODALITIES) + 0.05) * 1e9)
        while now[0] < horizon:
            now[0] += 10_000_000
            for fs in sync.poll():
                if fs.stamp_ns <= last:
                    frames.append(self._process(fs, camera_info, now[0], result))
        self._score(frames, labels, bag.start_ns, result, before_ns=None)
        if not result.masks and not stats.no_mask:
            stats.notes.append(self._why_no_frames(bag, sensor_of))
            log.warning("%s", stats.notes[-1])
        result.problems = list(bag.problems)
        for topic, n in result.errors.items():
            why = result.error_text.get(topic)
            stats.notes.append(f"{n} message(s) on {topic} could not be used: {why}" if why
                               else f"{n} undecodable message(s) on {topic} were skipped")
        for what, n in result.unusable.items():
            stats.notes.append(f"{what}: not used in {n} frame set(s)")
        return result

    def _robot_inputs(self, bag: BagReader, sensor_of: dict[str, str], info_topic: str,
                      notes: list[str]) -> dict[str, Callable[[Any], None]]:
        """#22: the bag's /tf_static and /tf into a TF buffer for the pipeline, and the depth camera's
        CameraInfo (``depth.camera_info_topic``, else one beside the depth topic). Returns
        {topic: handler} for the replay loop."""
        handlers: dict[str, Callable[[Any], None]] = {}
        tf_topics = [t for t in (TF_STATIC_TOPIC, TF_TOPIC) if bag.topics.get(t) == M.TF_MESSAGE]
        inputs = self.pipeline.inputs
        if tf_topics and self.values["extrinsics.source"] != "parameters":
            buf = TransformBuffer()
            inputs.attach_tf(buf)
            for t in tf_topics:
                handlers[t] = (lambda m, static=(t == TF_STATIC_TOPIC): buf.add_message(m, static=static))
        elif not tf_topics:
            inputs.attach_tf(None, "the bag has no /tf_static or /tf (extrinsics.source auto or parameters "
                                   "takes the *.extrinsic parameters)")
        depth_topic = next((t for t, m in sensor_of.items() if m == "depth"), None)
        if depth_topic is not None:
            given = self.values.get("depth.camera_info_topic") or ""
            base = depth_topic.rsplit("/", 1)[0] if depth_topic.endswith(("/compressed", "/compressedDepth")) \
                else depth_topic
            cand = topic_name(given) if given else base.rsplit("/", 1)[0] + "/camera_info"
            if cand != info_topic and bag.topics.get(cand) == M.CAMERA_INFO:
                handlers[cand] = lambda m: setattr(inputs, "depth_camera_info", m)
                inputs.depth_camera_info_expected = True
                if not given:
                    notes.append(f"depth: using the depth CameraInfo {cand} of the bag (depth.camera_info_topic)")
            elif given:
                notes.append(f"depth.camera_info_topic {cand} is not a CameraInfo topic of the bag")
        return handlers

    def _why_no_frames(self, bag: BagReader, sensor_of: dict[str, str]) -> str:
        """A replay that made no frame set: which parameter to set."""
        ref = self.values["reference"]
        have = {m: t for t, m in sensor_of.items()}
        if ref != "rate" and ref not in have:
            return (f"0 frames: the reference sensor {ref} ({topic_name(self.values[f'{ref}.topic'])}) is not in "
                    f"the bag; set --param reference=<one of {sorted(have)} or rate> or --param {ref}.topic=...")
        if ref == "event" and bag.topics.get(have["event"]) != M.IMAGE and self.values["event.format"] == "image":
            return (f"0 frames: event.format is image but {have['event']} holds {bag.topics.get(have['event'])}; "
                    "set --param event.format=cloud (PointCloud2) or packet (EventPacket)")
        if ref != "rate" and not bag.counts.get(have[ref], 0):
            return (f"0 frames: the reference topic {have[ref]} has no message; set --param reference=<another "
                    f"sensor of {sorted(have)} or rate>")
        return (f"0 frames from {sorted(have.values())}: check --param reference ({ref}) and the sensors' "
                "topics, transports (<sensor>.transport) and event.format")

    def _buffer_events(self, msg: Any, result: ReplayResult) -> None:
        """Every event packet goes to the pipeline's event buffer (as the node does), so a frame
        accumulates all events of its window, not only those of the matched packet."""
        err = self.pipeline.add_event_message(msg)
        if err is not None:
            result.errors["conversion:event_packet"] = result.errors.get("conversion:event_packet", 0) + 1

    def _process(self, fs: Any, camera_info: Any, emit_ns: int, result: ReplayResult) -> tuple:
        """Run the pipeline on one frame set; returns (stamp, mask, used, latency_s, rgb, emit_ns,
        confidence or None)."""
        t0 = time.perf_counter()
        res = self.pipeline.process(fs, camera_info)
        compute_s = time.perf_counter() - t0
        for text in res.warnings:  # configuration that looks wrong: said and reported, as the node logs it
            log.warning("%s", text)
            if text not in result.stats.notes:
                result.stats.notes.append(text)
        unusable, errors = split_unusable(res.errors)  # waiting for camera_info is not undecodable input
        for name, text in errors.items():
            key = f"conversion:{name}"
            result.errors[key] = result.errors.get(key, 0) + 1
            result.error_text[key] = text  # said in the notes: why (a missing transform is not a bad message)
        for name, why in unusable.items():
            key = f"{name}: {why}"
            result.unusable[key] = result.unusable.get(key, 0) + 1
        latency = (emit_ns - fs.stamp_ns) / 1e9 + compute_s  # waiting for the set + processing
        rgb = None
        if "rgb" in fs.messages and res.mask is not None and len(result.stats.overlays) < 64:
            from rmmss_ros.conversions import to_rgb8
            from rmmss_ros.conversions.compressed import as_image
            try:
                rgb = np.asarray(to_rgb8(as_image(fs.messages["rgb"], "rgb")))
            except ValueError:  # an undecodable packet: already counted as a conversion error
                rgb = None
        return fs.stamp_ns, res.mask, res.used_modalities, latency, rgb, emit_ns, res.confidence

    def _score(self, frames: list[tuple], labels: dict[int, Any], start_ns: int, result: ReplayResult,
               before_ns: int | None) -> list[tuple]:
        """Score the frames whose label has arrived (or that are older than ``before_ns``; all if
        None); returns the frames still waiting for their label. Memory stays bounded."""
        stats, waiting = result.stats, []
        for frame in frames:
            stamp, mask, used, latency, rgb, emit_ns, confidence = frame
            if stamp not in labels and before_ns is not None and stamp >= before_ns:
                waiting.append(frame)
                continue
            t_s = (stamp - start_ns) / 1e9
            if mask is None:
                stats.no_mask.append(t_s)
                continue
            present = [m in used for m in MODALITIES]
            label_msg = labels.get(stamp)
            if label_msg is None and labels:  # fallback ticks: the nearest label within tolerance
                near = min(labels, key=lambda k: abs(k - stamp))
                label_msg = labels[near] if abs(near - stamp) <= self.label_tolerance_ns else None
            label = None
            if label_msg is not None:
                label = np.frombuffer(bytes(label_msg.data), np.uint8).reshape(label_msg.height, label_msg.step)
                label = label[:, : label_msg.width]
            stats.add(t_s, present, mask, label, latency, rgb, confidence=confidence)
            result.masks[stamp], result.used[stamp], result.emit_ns[stamp] = mask, tuple(used), emit_ns
        for stamp in [s for s in labels if before_ns is not None and s < before_ns - 1_000_000_000]:
            del labels[stamp]  # labels of frames never emitted
        return waiting
