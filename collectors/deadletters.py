"""Dead letters: what a collector received and could not use, kept with the reason.

One JSON line per message (time, topic, reason, the raw payload), appended and flushed
before the message is acknowledged, so nothing the broker handed over is lost silently.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import Counter
from pathlib import Path


class DeadLetters:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.reasons: Counter[str] = Counter()

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def add(self, *, source: str, reason: str, payload: bytes, received_ms: int) -> None:
        try:
            text: str | None = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        record = {
            "received_ms": received_ms,
            "source": source,
            "reason": reason,
            "payload": text if text is not None else None,
            "payload_b64": None if text is not None else base64.b64encode(payload).decode(),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self.reasons[reason.split(":")[0]] += 1

    def read(self, limit: int = 100) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in lines]
