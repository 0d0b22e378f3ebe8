"""A py-spy profile of a server process while it is under load, summarised by where the
event-loop thread's time goes (FastAPI's dependency solving, the thread-pool hop, h11, ...).

    with Profile(pid, seconds) as profile:   # py-spy records while the load runs
        run the load
    print(profile.summary())

py-spy samples without pausing the process (`--nonblocking`), so the figures under load
stay near the ones without it. Samples of other threads (the thread pool's DuckDB queries,
paho's network thread) are counted apart from the event loop's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

# (bucket, test on "function (file:line)") from the leaf up: the first frame that matches
# names the sample; more specific buckets come first
_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("auth: key lookup and rate limit", ("(api/deps.py", "(api/keys.py", "(api/ratelimit.py")),
    ("collectors' work on the loop (parse, batch, ack)", ("(collectors/",)),
    (
        "route body (our code)",
        ("(api/", "(storage/", "(processing/", "(core/", "(alarms/"),
    ),
    ("response-model validation and encoding", ("serialize_response", "fastapi/encoders.py")),
    ("FastAPI dependency solving and parameters", ("(fastapi/dependencies/",)),
    ("thread-pool hop (def routes)", ("anyio/", "run_in_threadpool", "concurrent/futures")),
    ("FastAPI routing and request", ("(fastapi/",)),
    ("Starlette routing, middleware, responses", ("(starlette/",)),
    ("h11 HTTP parsing (uvicorn)", ("h11/", "uvicorn/protocols/")),
    ("paho MQTT (collectors)", ("paho/",)),
    ("pydantic", ("pydantic",)),
    ("asyncio loop and sockets", ("asyncio/", "selectors.py")),
]


def classify(stack: str) -> str:
    if "(collectors/" in stack:  # the collector's consumer runs on the same loop as the API
        return _BUCKETS[1][0]
    frames = stack.split(";")
    for frame in reversed(frames):
        for bucket, needles in _BUCKETS:
            if any(n in frame for n in needles):
                return bucket
    return "other"


_IDLE = ("Condition.wait", "Event.wait", "Queue.get", "select", "_wait_for_tstate_lock")


def thread_of(stack: str) -> str:
    """A worker thread's name for the summary: what it runs (the frame below threading's
    bootstrap; for the thread pool's workers, the function they were given)."""
    frames = [f.split(" (")[0] for f in stack.split(";")]
    for i, frame in enumerate(frames):
        if frame == "_WorkItem.run" and i + 1 < len(frames):  # asyncio.to_thread's pool
            return f"thread pool (to_thread): {frames[i + 1]}"
    for i, frame in enumerate(frames):
        if frame == "Thread._bootstrap_inner" and i + 1 < len(frames):
            target = frames[i + 1]
            if target in ("WorkerThread.run", "_worker") and i + 2 < len(frames):
                return f"thread pool: {frames[i + 2]}"
            if target == "Thread.run" and i + 2 < len(frames):
                return f"thread: {frames[i + 2]}"
            return f"thread: {target}"
    return "thread: ?"


def summarise(raw: str, top: int = 8) -> list[tuple[str, float]]:
    """(bucket, share of the event-loop thread's samples), largest first; then the other
    threads' samples, as a share of the event loop's."""
    loop: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    others = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # a worker thread's stack starts in threading's bootstrap; the rest is the event
        # loop's (coroutine stacks sampled without pausing can come out truncated)
        if "Thread._bootstrap" in stack:
            if stack.rsplit(";", 1)[-1].split(" (")[0].endswith(_IDLE):
                continue  # a worker waiting for work is not using the CPU
            others += int(count)
            threads[thread_of(stack)] += int(count)
        else:
            loop[classify(stack)] += int(count)
    total = sum(loop.values())
    if total == 0:
        return []
    rows = [(name, n / total) for name, n in loop.most_common(top)]
    rows.append(("(other threads, vs the loop's samples)", others / total))
    rows += [(f"  {name}", n / total) for name, n in threads.most_common(4)]
    return rows


class Profile:
    """py-spy recording `pid` for `seconds`, started on enter; `summary()` after exit."""

    def __init__(self, pid: int, seconds: float, rate: int = 100) -> None:
        self.pid = pid
        self.seconds = seconds
        self.rate = rate
        self._dir = tempfile.TemporaryDirectory()
        self._out = Path(self._dir.name) / "raw.txt"
        self._proc: subprocess.Popen[bytes] | None = None
        self.raw = ""

    @staticmethod
    def binary() -> str | None:
        """py-spy on PATH, or beside this Python (`pip install py-spy` into its venv)."""
        beside = Path(sys.executable).with_name("py-spy")
        return shutil.which("py-spy") or (str(beside) if beside.exists() else None)

    @classmethod
    def available(cls) -> bool:
        return cls.binary() is not None

    def __enter__(self) -> Profile:
        self._proc = subprocess.Popen(
            [
                self.binary() or "py-spy",
                "record",
                "--pid",
                str(self.pid),
                "--duration",
                str(max(1, round(self.seconds))),
                "--rate",
                str(self.rate),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(self._out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._proc is not None
        self._proc.wait(self.seconds + 30)
        if self._out.exists():
            self.raw = self._out.read_text()
        self._dir.cleanup()

    def summary(self) -> str:
        rows = summarise(self.raw)
        if not rows:
            return "    (py-spy recorded nothing: it needs ptrace permission)"
        return "\n".join(f"    {share:6.1%}  {name}" for name, share in rows)
