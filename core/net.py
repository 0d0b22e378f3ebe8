"""Small network helpers both sides need (collectors and simulators, tests and benchmarks)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the OS picks it; another process may take it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """`mqtt://host:port` (or `tcp://`, or a bare `host:port`) to (host, port); port 1883 by
    default. Raises `ValueError` saying what is wrong."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"MQTT url {url!r}: expected mqtt://host:port")
    return parts.hostname, _port(url, parts.netloc) or 1883


def http_port(url: str) -> int | None:
    """The explicit port of an http(s) URL, checked to be 1-65535 (None when absent)."""
    return _port(url, urlsplit(url).netloc)


def _port(url: str, netloc: str) -> int | None:
    # urlsplit's .port raises a bare "Port out of range 0-65535" and accepts 0
    host_port = netloc.rsplit("@", 1)[-1]
    if host_port.endswith("]") or ":" not in host_port:
        return None
    text = host_port.rsplit(":", 1)[1]
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"url {url!r}: port {text!r} is not a TCP port (1-65535)")
    return int(text)
