"""E-mail against a real SMTP server on loopback (aiosmtpd, a TLS certificate made by
openssl for the test): STARTTLS and implicit TLS with a login, Chinese subject and body,
retries while the server is down, and refusals that no retry can fix."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from alarms.notify import NotifyDispatcher
from alarms.notify.notice import SiteNames
from alarms.notify.render import Batch, text
from core.health import Health
from core.net import free_port
from tests.conftest import IN_CI, require
from tests.notify_helpers import change, site

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:  # pragma: no cover - the dev extra installs it
    if IN_CI:
        raise
    pytest.skip("aiosmtpd not installed (pip install -e '.[dev]')", allow_module_level=True)

import ssl

USER, PASSWORD = "epcmon", "smtp-pa55-word"
ENV = {"T_SMTP_PASSWORD": PASSWORD}


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: str


class Mailbox:
    """aiosmtpd's handler: keeps what it is sent."""

    def __init__(self) -> None:
        self.mail: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.login_data.decode() if isinstance(session.login_data, bytes) else ""
        self.mail.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.content,
                server.transport.get_extra_info("ssl_object") is not None,
                login,
            )
        )
        return "250 OK"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: the server answers 535 itself when the login is wrong
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = require("openssl", "openssl")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return d / "cert.pem", d / "key.pem"


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, cert))
    return context


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int
    controller: Any = None

    def start(self, **kw: Any) -> None:
        self.controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, authenticator=check_login, **kw
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(Mailbox(), free_port())
    try:
        yield server
    finally:
        server.stop()


def channel(port: int, **kw: Any) -> dict[str, Any]:
    return {
        "id": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password_env": "T_SMTP_PASSWORD",
        "sender": "能源监测 <epcmon@example.gov.cn>",
        "recipients": ["ops@example.gov.cn", "duty@example.gov.cn"],
        "retry_backoff_s": 0.05,
        "retry_max_s": 0.2,
        "timeout_s": 5,
        **kw,
    }


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)  # the delivery runs in a worker thread: look again


@asynccontextmanager
async def running(d: NotifyDispatcher) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def dispatcher(entry: dict[str, Any], env: dict[str, str] = ENV, **kw: Any) -> NotifyDispatcher:
    return NotifyDispatcher(site([entry]), environ=env, tick_s=0.02, **kw)


async def test_starttls_with_login_delivers_chinese_subject_and_body(smtp: SmtpServer, cert):
    smtp.start(tls_context=server_tls(cert), require_starttls=True, auth_required=True)
    d = dispatcher(channel(smtp.port, security="starttls", ca_file=str(cert[0])))
    leak, cleared = change(), change("cleared", cleared="2025-07-14 06:00")
    async with running(d):
        d.dispatch([leak])
        await until(lambda: len(smtp.mailbox.mail) == 1, what="the alarm's mail")
        d.dispatch([cleared])
        await until(lambda: len(smtp.mailbox.mail) == 2, what="the clear's mail")
    first = smtp.mailbox.mail[0]
    assert first.mail_from == "epcmon@example.gov.cn"
    assert first.rcpt_tos == ["ops@example.gov.cn", "duty@example.gov.cn"]
    assert (first.tls, first.login) == (True, USER)
    msg = message_from_bytes(first.content, policy=policy.default)
    assert msg["Subject"] == "【告警】夜间持续用水：最低流量 1.25 m³/h - 六安市行政中心"
    assert msg.get_content() == text(SiteNames(d.site), Batch("single", (leak,)))
    assert "位置：主楼给水引入管 DN150（W-MAIN） · 主楼" in msg.get_content()
    second = message_from_bytes(smtp.mailbox.mail[1].content, policy=policy.default)
    assert second["Subject"].startswith("【已恢复】")
    assert "恢复：2025-07-14 06:00（持续 3 小时 45 分钟）" in second.get_content()


async def test_implicit_tls(smtp: SmtpServer, cert):
    # aiosmtpd's auth_require_tls knows STARTTLS only; this connection is TLS from the start
    smtp.start(ssl_context=server_tls(cert), auth_require_tls=False)
    d = dispatcher(channel(smtp.port, security="ssl", ca_file=str(cert[0])))
    async with running(d):
        d.dispatch([change()])
        await until(lambda: len(smtp.mailbox.mail) == 1, what="the mail over TLS")
    assert (smtp.mailbox.mail[0].tls, smtp.mailbox.mail[0].login) == (True, USER)


async def test_a_server_down_is_retried_until_it_is_up(smtp: SmtpServer, cert):
    health = Health()
    d = dispatcher(channel(smtp.port, security="none", username="", password_env=""),
                   health=health)  # fmt: skip
    async with running(d):
        d.dispatch([change()])
        await until(lambda: health.is_degraded("notify mail"), what="refused: degraded")
        assert "ConnectionRefusedError" in d.stats()["mail"].failing
        smtp.start(auth_require_tls=False)
        await until(lambda: len(smtp.mailbox.mail) == 1, what="delivered once it is up")
        await until(lambda: not health.is_degraded("notify mail"), what="recovered")
    assert d.stats()["mail"].given_up == 0


@pytest.mark.parametrize(
    ("setup", "password", "says"),
    [
        ("tls", "wrong-pa55", "login refused: 535"),
        ("tls-untrusted", PASSWORD, "certificate: self-signed certificate"),
        ("no-tls", PASSWORD, "the server cannot: STARTTLS extension not supported"),
    ],
)
async def test_what_no_retry_can_fix_is_given_up_at_once(
    smtp: SmtpServer, cert, caplog: pytest.LogCaptureFixture, setup: str, password: str, says: str
):
    if setup == "no-tls":
        smtp.start(auth_require_tls=False)
    else:
        smtp.start(tls_context=server_tls(cert), require_starttls=True)
    ca = "" if setup == "tls-untrusted" else str(cert[0])
    health = Health()
    d = dispatcher(channel(smtp.port, ca_file=ca), {"T_SMTP_PASSWORD": password}, health=health)
    with caplog.at_level(logging.DEBUG):
        async with running(d):
            d.dispatch([change()])
            await until(lambda: d.stats()["mail"].given_up == 1, what="given up")
    assert smtp.mailbox.mail == []
    assert says in d.stats()["mail"].failing
    assert says in health.snapshot().conditions["notify mail"].detail
    ours = [r for r in caplog.records if not r.name.startswith("mail")]  # not aiosmtpd's
    assert any("gave up on a message of 1 alarm changes after 1 attempts" in r.getMessage()
               for r in ours)  # fmt: skip
    assert all(password not in r.getMessage() for r in ours)
