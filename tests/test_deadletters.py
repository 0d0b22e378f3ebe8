"""Dead letters: bounded on disk, read from the tail, a valid JSON record whatever the payload,
and a failed write (a full file system) that raises and leaves no torn record."""

from __future__ import annotations

import base64
import json
import tracemalloc
from pathlib import Path

import pytest

from core.config import parse_site
from storage.deadletters import DeadLetter, DeadLetters, read_dead_letters, record
from tests.fullfs import fill, small_filesystem


def _letter(i: int, payload: bytes = b'{"p": 1}', reason: str = "not JSON: x") -> DeadLetter:
    return DeadLetter(f"t/{i}", reason, payload, 1_767_225_600_000 + i)


def test_records_are_valid_json_whatever_the_payload(tmp_path: Path):
    dead = DeadLetters(tmp_path / "d.jsonl")
    payloads = [
        b"",
        b'{"a": "\\ud800"}',  # a lone surrogate escape: text, kept as is
        b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
        bytes(range(256)),
        "电表 ⚡".encode(),
        "ü".encode("utf-16"),
        b"line\nbreak\r\x00nul",
    ]
    for i, payload in enumerate(payloads):
        dead.add(source=f"t/{i}", reason=f"r{i}: x", payload=payload, received_ms=i)
    dead.add(source="t/\udcff\ud800", reason="bad topic: \ud800", payload=b"x", received_ms=9)
    raw = (tmp_path / "d.jsonl").read_bytes()
    lines = raw.decode("utf-8").splitlines()  # strict UTF-8: no surrogates got out
    assert len(lines) == len(payloads) + 1
    for line, payload in zip(lines, payloads, strict=False):
        item = json.loads(line)
        kept = (
            item["payload"].encode()
            if item["payload"] is not None
            else base64.b64decode(item["payload_b64"])
        )
        assert kept == payload
        assert item["payload_bytes"] == len(payload)
        assert item["truncated"] is False
    odd = json.loads(lines[-1])
    assert odd["source"] == "t/\\udcff\\ud800"
    assert odd["reason"] == "bad topic: \\ud800"
    assert dead.reasons == {**{f"r{i}": 1 for i in range(len(payloads))}, "bad topic": 1}


def test_huge_payloads_are_cut_with_their_size_noted():
    text = record(_letter(0, "电".encode() * 100_000), max_payload_bytes=1000)
    assert text["truncated"] is True
    assert text["payload_bytes"] == 300_000
    assert text["payload"] == "电" * 333  # cut at a character boundary, still text
    binary = record(_letter(0, b"\xff" * 100_000), max_payload_bytes=1000)
    assert binary["payload"] is None
    assert len(base64.b64decode(binary["payload_b64"])) == 1000


def test_rotation_bounds_the_disk(tmp_path: Path):
    dead = DeadLetters(tmp_path / "d.jsonl", max_file_bytes=10_000, keep_files=3)
    for i in range(2_000):
        dead.add(source=f"t/{i}", reason="r: x", payload=b"y" * 100, received_ms=i)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["d.jsonl", "d.jsonl.1", "d.jsonl.2", "d.jsonl.3"]
    assert all((tmp_path / f).stat().st_size <= 10_000 for f in files)
    newest = dead.read(limit=100)
    assert [r["received_ms"] for r in newest] == list(range(1_900, 2_000))
    spans = dead.read(limit=10_000)  # reaches back through the rotated files, in order
    assert [r["received_ms"] for r in spans] == list(range(2_000 - len(spans), 2_000))
    assert len(spans) > 100
    assert dead.count == 2_000


def test_the_site_file_sets_the_rotation(tmp_path: Path):
    site = parse_site(
        {
            "site": {"id": "t", "name": "T", "latitude": 31, "longitude": 116},
            "mqtt": {
                "dead_letter_file_bytes": 5000,
                "dead_letter_files": 2,
                "max_payload_bytes": 1024,
            },
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 100}],
        }
    )
    dead = DeadLetters.for_mqtt(tmp_path / "d.jsonl", site.mqtt)
    assert (dead.max_file_bytes, dead.keep_files, dead.max_payload_bytes) == (5000, 2, 1024)
    dead.add(source="t", reason="r: x", payload=b"y" * 2000, received_ms=0)
    assert dead.read()[0]["payload"] == "y" * 1024
    default = DeadLetters(tmp_path / "e.jsonl")
    assert (default.max_file_bytes, default.keep_files, default.max_payload_bytes) == (
        16 * 1024 * 1024,
        4,
        65_536,
    )


def test_read_does_not_load_a_whole_huge_file(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    line = json.dumps(record(_letter(0, b"z" * 1000), 65536)) + "\n"
    with path.open("w") as fh:
        for _ in range(40_000):  # ~45 MB
            fh.write(line)
    dead = DeadLetters(path, max_file_bytes=1 << 30)
    tracemalloc.start()
    try:
        got = dead.read(limit=20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == 20
    assert peak < 2_000_000  # a few chunks, not 45 MB


def test_a_torn_or_foreign_line_is_skipped(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    good = json.dumps(record(_letter(1), 65536))
    path.write_text(f"{good}\nnot json\n[1, 2]\n\n{good}\n" + good[:30])
    assert [r["source"] for r in read_dead_letters(path)] == ["t/1", "t/1"]


def test_a_full_file_system_raises_and_leaves_no_torn_record(tmp_path: Path):
    with small_filesystem(tmp_path / "small", 64) as small:
        dead = DeadLetters(small / "d.jsonl")
        dead.write([_letter(0)])
        filler = fill(small)
        with pytest.raises(OSError, match="No space left"):
            dead.write([_letter(i, b"x" * 3000) for i in range(1, 20)])
        filler.unlink()
        dead.write([_letter(99)])
        lines = (small / "d.jsonl").read_bytes().splitlines()
        assert [json.loads(x)["source"] for x in lines] == ["t/0", "t/99"]
        assert dead.count == 2
