"""Serving the API inside an epcmon process: uvicorn without its own signal handling, on
sockets we bind ourselves (so a port in use is a one-line configuration error), as a part the
supervisor can restart."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from core.errors import ConfigError


class ApiServer(uvicorn.Server):
    """uvicorn, minus its own signal handling: the process's runtime owns Ctrl-C.

    It binds its listening sockets itself (`listen`), before anything is served: an address
    it cannot listen on (a port in use, a host that is not this machine's) is a one-line
    `ConfigError` naming `[api] port` or `host` (and the site file, when `source` is given),
    raised to the caller, instead of uvicorn's log line and a `SystemExit` inside a task."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        source: str = "",
        port_key: str = "port",
        reuse_port: bool = False,
    ) -> None:
        super().__init__(config)
        self.source = source
        self.port_key = port_key
        self.reuse_port = reuse_port

    @staticmethod
    def listen(
        host: str, port: int, *, source: str = "", port_key: str = "port", reuse_port: bool = False
    ) -> list[socket.socket]:
        """Sockets bound to every address of `host` at `port` (0: a free one), as asyncio's
        `create_server` would bind them; with `reuse_port`, shareable with other processes
        that bind it so too (`SO_REUSEPORT`: the kernel spreads the connections over them)."""
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ConfigError(
                "reuse_port needs SO_REUSEPORT, which this platform lacks",
                file=source,
                entity="[api]",
                key="reuse_port",
            )
        try:
            addresses = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise ConfigError(
                f"cannot listen on {host!r}: {exc.strerror}",
                file=source,
                entity="[api]",
                key="host",
            ) from None
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _name, address in dict.fromkeys(addresses):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError as exc:
            for sock in sockets:
                sock.close()
            reason = {
                errno.EADDRINUSE: "the port is already in use (by another epcmon, or another server)",
                errno.EADDRNOTAVAIL: "not an address of this machine",
                errno.EACCES: "permission denied (ports below 1024 need privileges)",
            }.get(exc.errno or 0, exc.strerror or str(exc))
            raise ConfigError(
                f"cannot listen on {host}:{port}: {reason}",
                file=source,
                entity="[api]",
                key="host" if exc.errno == errno.EADDRNOTAVAIL else port_key,
            ) from None
        return sockets

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def bound_port(self) -> int:
        if self.servers and self.servers[0].sockets:
            return int(self.servers[0].sockets[0].getsockname()[1])
        return int(self.config.port)

    async def start_serving(self, sockets: list[socket.socket] | None = None) -> asyncio.Task[None]:
        """Serve in a task (on `sockets` from `listen`, or on ones bound now); return once
        listening, or raise why it could not."""
        if sockets is None:
            sockets = self.listen(
                self.config.host,
                self.config.port,
                source=self.source,
                port_key=self.port_key,
                reuse_port=self.reuse_port,
            )
        task = asyncio.create_task(self.serve(sockets=sockets))
        while not self.started and not task.done():
            await asyncio.sleep(0.02)  # uvicorn signals readiness only through `started`
        if task.done():
            for sock in sockets:
                sock.close()
            await task
            raise RuntimeError(f"the API could not listen on {self.config.host}:{self.config.port}")
        return task


class ApiPart:
    """The API as a supervised part: listens when started (so a port in use is found before
    the service says it runs), serves until `stop`, and listens anew after a failure."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        source: str = "",
        port_key: str = "port",
        reuse_port: bool = False,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.source = source
        self.port_key = port_key
        """The `[api]` key the port comes from (`metrics_port` for a collector's /metrics)."""
        self.reuse_port = reuse_port
        """Share the port with other processes (`[api] reuse_port`)."""
        self._serving: tuple[ApiServer, asyncio.Task[None]] | None = None

    async def start(self, sockets: list[socket.socket] | None = None) -> int:
        """Listen now (on `sockets` if given); return the bound port (the configured one, or
        the one 0 got)."""
        server = ApiServer(
            uvicorn.Config(
                self.app, host=self.host, port=self.port, log_level="warning", lifespan="off"
            ),
            source=self.source,
            port_key=self.port_key,
            reuse_port=self.reuse_port,
        )
        task = await server.start_serving(sockets)
        self._serving = (server, task)
        if self.port == 0:
            self.port = server.bound_port  # a restart listens where clients already look
        return server.bound_port

    async def run(self, stop: asyncio.Event) -> None:
        if self._serving is None:
            await self.start()
        assert self._serving is not None
        server, task = self._serving
        self._serving = None
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                server.should_exit = True
                await task
        task.result()  # a server that ended by itself: its error, or a quiet return
