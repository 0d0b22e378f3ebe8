"""The `epcmon` command's option types and its parser class.

Options are checked when they are parsed: each type returns the parsed value or raises
`ArgumentTypeError`, which argparse reports as "epcmon CMD: error: argument --OPTION:
<message>", one line (`Parser`), before anything starts.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn


def non_negative_int(text: str) -> int:
    return _whole_number(text, at_least=0)


def positive_int(text: str) -> int:
    return _whole_number(text, at_least=1)


def _whole_number(text: str, *, at_least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < at_least:
        raise argparse.ArgumentTypeError(f"{text!r}: must be {at_least} or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number above 0")
    return value


def poll_interval(text: str) -> int:
    value = positive_int(text)
    if value > 86_400:  # the site file's poll_interval_s bound
        raise argparse.ArgumentTypeError(f"{text!r}: at most 86400 seconds")
    return value


def port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535, 0: any free one)")
    return value


def speed(text: str) -> float:
    value = positive_float(text)
    if value > 1_000_000:  # the site file's [simulation] acceleration bound
        raise argparse.ArgumentTypeError(f"{text!r}: at most 1000000 simulated seconds per second")
    return value


def shard(text: str) -> str:
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n, e.g. 1/2") from None
    if n < 1 or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n with 1 <= i <= n, e.g. 2/2")
    return text


def history_interval(text: str) -> str:
    from simulators.history import INTERVALS

    if text not in INTERVALS:
        *most, last = INTERVALS
        raise argparse.ArgumentTypeError(f"{text!r}: one of {', '.join(most)} or {last}")
    return text


def http_url(text: str) -> str:
    from urllib.parse import urlsplit

    from core.net import http_port

    try:
        parts = urlsplit(text)
        http_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r}: expected http(s)://host[:port]")
    return text


def optional_http_url(text: str) -> str:
    return http_url(text) if text else text


class Parser(argparse.ArgumentParser):
    """argparse, reporting a usage error as one line (the option and what is wrong, and where
    the help is) instead of the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
