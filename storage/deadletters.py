"""Dead letters: what a collector received and could not use, kept with the reason.

One JSON line per message, appended and fsynced before the message is acknowledged, so
nothing the broker handed over is lost silently:

    {"received_ms": 1767225600000, "source": "<topic>", "reason": "not JSON: ...",
     "payload": "<the payload, if UTF-8>", "payload_b64": "<else base64>",
     "payload_bytes": 123, "truncated": false}

Whatever the payload, a record is one line of valid UTF-8 JSON: a payload that is not UTF-8
is kept as base64, lone surrogates in a topic or reason are escaped, and a payload longer
than `max_payload_bytes` (by default `[mqtt] max_payload_bytes`) is cut there (`truncated`, with its full size in `payload_bytes`).

Bounded on disk: the file is rotated when it would grow past `max_file_bytes`
(`dead-letters.jsonl` -> `.1` -> `.2` ...), and only `keep_files` rotated files are kept, so
a year of garbage takes at most `(keep_files + 1) * max_file_bytes`. `read()` reads backwards
from the end of the files, never a whole file.

A write that fails (disk full) raises `OSError` and leaves the file as it was (all of a write
or none of it): the caller must not acknowledge those messages.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import MqttConfig

log = logging.getLogger("epcmon.deadletters")

MAX_REASONS = 64
"""Distinct reason categories counted; the rest are counted as `other`."""
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that could not be used."""

    source: str
    """Where it came from (the MQTT topic)."""
    reason: str
    """Why, starting with a short category (`not JSON: ...`)."""
    payload: bytes
    received_ms: int


def _printable(text: str) -> str:
    """`text` as valid Unicode: lone surrogates become `\\udXXX` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _category(reason: str) -> str:
    return reason.split(":", 1)[0][:60]


def record(letter: DeadLetter, max_payload_bytes: int) -> dict[str, Any]:
    """The JSON object stored for `letter`, its payload cut at `max_payload_bytes`."""
    kept = letter.payload[:max_payload_bytes]
    truncated = len(kept) < len(letter.payload)
    text: str | None
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a cut through a multi-byte character is still text; anything else is binary
        if truncated and exc.start >= len(kept) - 3 and exc.reason == "unexpected end of data":
            text = kept[: exc.start].decode("utf-8", "strict")
        else:
            text = None
    return {
        "received_ms": letter.received_ms,
        "source": _printable(letter.source),
        "reason": _printable(letter.reason),
        "payload": text,
        "payload_b64": None if text is not None else base64.b64encode(kept).decode("ascii"),
        "payload_bytes": len(letter.payload),
        "truncated": truncated,
    }


class DeadLetters:
    """The dead-letter file of a collector process (module doc). Thread-safe."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_file_bytes: int | None = None,
        keep_files: int | None = None,
        max_payload_bytes: int | None = None,
    ) -> None:
        defaults = MqttConfig()
        self.path = Path(path)
        self.max_file_bytes = max_file_bytes or defaults.dead_letter_file_bytes
        self.keep_files = keep_files or defaults.dead_letter_files
        self.max_payload_bytes = max_payload_bytes or defaults.max_payload_bytes
        """Payload bytes kept per record: by default `[mqtt] max_payload_bytes`'s, so a payload
        the parser would read is kept whole (it can be replayed); a bigger one is cut."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._size = self.path.stat().st_size if self.path.exists() else 0
        self.reasons: Counter[str] = Counter()
        """Dead letters written by this process, by reason category."""

    @classmethod
    def for_mqtt(cls, path: str | Path, mqtt: MqttConfig) -> DeadLetters:
        """Rotation as the site file's `[mqtt] dead_letter_*` keys say."""
        return cls(
            path,
            max_file_bytes=mqtt.dead_letter_file_bytes,
            keep_files=mqtt.dead_letter_files,
            max_payload_bytes=mqtt.max_payload_bytes,
        )

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def add(self, *, source: str, reason: str, payload: bytes, received_ms: int) -> None:
        self.write([DeadLetter(source, reason, payload, received_ms)])

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Append `letters` durably (one fsync); raises `OSError` when that fails, and then
        none of them may be acknowledged."""
        if not letters:
            return
        data = "".join(
            json.dumps(record(letter, self.max_payload_bytes), ensure_ascii=False) + "\n"
            for letter in letters
        ).encode("utf-8")
        with self._lock:
            if self._size and self._size + len(data) > self.max_file_bytes:
                self._rotate()
            before = self.path.stat().st_size if self.path.exists() else 0
            try:
                with self.path.open("ab") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError:
                self._truncate(before)
                raise
            self._size = before + len(data)
            for letter in letters:
                category = _category(letter.reason)
                if category not in self.reasons and len(self.reasons) >= MAX_REASONS:
                    category = "other"
                self.reasons[category] += 1

    def _truncate(self, size: int) -> None:
        """After a failed append, cut the file back to where it was: all of a write or none
        of it, and no torn record (truncating frees space, so it works on a full disk)."""
        try:
            with self.path.open("rb+") as fh:
                fh.truncate(size)
        except OSError:
            log.warning("could not cut %s back after a failed write", self.path, exc_info=True)
        self._size = size

    def _rotate(self) -> None:
        oldest = self._rotated(self.keep_files)
        oldest.unlink(missing_ok=True)
        for n in range(self.keep_files - 1, 0, -1):
            if self._rotated(n).exists():
                self._rotated(n).rename(self._rotated(n + 1))
        if self.path.exists():
            self.path.rename(self._rotated(1))
        self._size = 0

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def files(self) -> list[Path]:
        """The current file and the rotated ones, newest first."""
        candidates = [self.path] + [self._rotated(n) for n in range(1, self.keep_files + 1)]
        return [p for p in candidates if p.exists()]

    def read(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` records, oldest first; reads backwards, never a whole file.
        A line that is not a JSON object (a torn write) is skipped."""
        with self._lock:
            return read_dead_letters(self.path, limit, self.keep_files)


def read_dead_letters(
    path: str | Path, limit: int = 100, keep_files: int = 100
) -> list[dict[str, Any]]:
    """The newest `limit` records of the dead-letter file at `path` and its rotated files,
    oldest first (for readers without a `DeadLetters`, such as the API)."""
    path = Path(path)
    newest_first: list[dict[str, Any]] = []
    files = [path] + [path.with_name(f"{path.name}.{n}") for n in range(1, keep_files + 1)]
    for file in files:
        if len(newest_first) >= limit:
            break
        if not file.exists():
            continue
        for line in _lines_backwards(file):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                newest_first.append(item)
                if len(newest_first) >= limit:
                    break
    newest_first.reverse()
    return newest_first


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The non-empty lines of `path`, last first, reading fixed-size chunks from the end."""
    with path.open("rb") as fh:
        position = fh.seek(0, os.SEEK_END)
        rest = b""
        while position > 0:
            step = min(_READ_CHUNK, position)
            position -= step
            fh.seek(position)
            chunk = fh.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]  # may continue in the previous chunk
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest
