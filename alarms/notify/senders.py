"""Sending one message over one channel: the I/O around `formats` (HTTP via httpx, SMTP via
smtplib in a worker thread), and the secrets it needs.

A send either returns (delivered) or raises `DeliveryError`, which says whether trying again
can help: a connection error, a timeout, HTTP 408/425/429/5xx, an SMTP 4xx or a robot's
"too fast" answer can; a 4xx, a bad key, a refused login or certificate cannot.

Secrets are read once, from the environment, by the variable names the site file gives;
a missing one is a `ConfigError` naming the variable. No secret reaches a log line: every
error text is passed through `Redactor`, and while the dispatcher runs, httpx's own request
log (which prints the URL, and so a robot's key) is redacted by `RedactingFilter`.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import httpx

from alarms.notify.formats import (
    alertmanager_body,
    dingtalk_body,
    dingtalk_url,
    email_message,
    json_bytes,
    signature,
    webhook_body,
    wecom_body,
    wecom_url,
)
from alarms.notify.notice import SiteNames
from alarms.notify.render import Batch
from core.config import SiteConfig
from core.config.notify import (
    AlertmanagerChannel,
    Channel,
    DingtalkChannel,
    EmailChannel,
    WebhookChannel,
    WecomChannel,
)
from core.errors import ConfigError

RETRYABLE_HTTP = frozenset({408, 425, 429})
WECOM_TOO_FAST = frozenset({45009})
DINGTALK_TOO_FAST = frozenset({130101, 410100})


class DeliveryError(Exception):
    """A message did not arrive; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Redactor:
    """Replaces every secret (as is, and URL-encoded) in a text by `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = set()
        for s in secrets:
            if s:
                forms |= {s, quote(s, safe=""), quote_plus(s)}
        self._forms = sorted(forms, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        self._forms = Redactor([*self._forms, *secrets])._forms

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        return text


class RedactingFilter(logging.Filter):
    """Redacts secrets from the records of a library's logger (httpx logs each request's URL)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def secret(channel: Channel, key: str, environ: Mapping[str, str], source: str) -> str:
    """The value of the variable that `channel.<key>` names ("" when it names none)."""
    name: str = getattr(channel, key)
    if not name:
        return ""
    value = environ.get(name, "")
    if not value:
        raise ConfigError(
            f"environment variable {name} is not set (it holds this channel's secret)",
            file=source,
            entity=f"notify channel {channel.id!r}",
            key=key,
        )
    return value


class Sender(Protocol):
    secrets: tuple[str, ...]

    async def send(self, batch: Batch, now_s: float, client: httpx.AsyncClient) -> None: ...


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else 0.0


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST JSON; a 2xx answer is returned, anything else raises `DeliveryError`."""
    try:
        response = await client.post(
            url,
            content=body,
            headers={"content-type": "application/json; charset=utf-8", **(headers or {})},
            timeout=timeout_s,
        )
    except httpx.TransportError as exc:  # connection refused, reset, timeout
        raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from None
    if response.is_success:
        return response
    status = response.status_code
    raise DeliveryError(
        f"HTTP {status}: {response.text[:200]}",
        retryable=status in RETRYABLE_HTTP or status >= 500,
        retry_after=_retry_after(response),
    )


def _errcode(response: httpx.Response, too_fast: frozenset[int]) -> None:
    """The robots answer HTTP 200 with `{"errcode": 0}` on success, another code otherwise."""
    try:
        answer: Any = response.json()
        code = int(answer["errcode"])
    except (ValueError, KeyError, TypeError):
        raise DeliveryError(
            f"not a robot's answer: {response.text[:200]}", retryable=False
        ) from None
    if code != 0:
        message = str(answer.get("errmsg", ""))[:200]
        raise DeliveryError(f"errcode {code}: {message}", retryable=code in too_fast)


class WebhookSender:
    def __init__(self, channel: WebhookChannel, names: SiteNames, environ: Mapping[str, str]):
        source = names.site.source
        self.channel = channel
        self.names = names
        self.url = channel.url or secret(channel, "url_env", environ, source)
        self.token = secret(channel, "token_env", environ, source)
        self.secret = secret(channel, "secret_env", environ, source)
        self.secrets = tuple(s for s in (self.token, self.secret) if s) + (
            (self.url,) if channel.url_env else ()
        )

    async def send(self, batch: Batch, now_s: float, client: httpx.AsyncClient) -> None:
        body = json_bytes(webhook_body(self.names, batch))
        headers = {"user-agent": "epcmon"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if self.secret:
            headers["x-epcmon-signature-256"] = signature(body, self.secret)
        await post(client, self.url, body, self.channel.timeout_s, headers)


class WecomSender:
    def __init__(self, channel: WecomChannel, names: SiteNames, environ: Mapping[str, str]):
        self.channel = channel
        self.names = names
        self.key = secret(channel, "key_env", environ, names.site.source)
        self.secrets: tuple[str, ...] = (self.key,)

    async def send(self, batch: Batch, now_s: float, client: httpx.AsyncClient) -> None:
        body = json_bytes(wecom_body(self.names, batch))
        url = wecom_url(self.channel.url, self.key)
        _errcode(await post(client, url, body, self.channel.timeout_s), WECOM_TOO_FAST)


class DingtalkSender:
    def __init__(self, channel: DingtalkChannel, names: SiteNames, environ: Mapping[str, str]):
        source = names.site.source
        self.channel = channel
        self.names = names
        self.token = secret(channel, "token_env", environ, source)
        self.secret = secret(channel, "secret_env", environ, source)
        self.secrets = tuple(s for s in (self.token, self.secret) if s)

    async def send(self, batch: Batch, now_s: float, client: httpx.AsyncClient) -> None:
        body = json_bytes(dingtalk_body(self.names, batch, self.channel.at_mobiles))
        # signed with the time of sending: DingTalk refuses a timestamp an hour off
        url = dingtalk_url(self.channel.url, self.token, self.secret, int(time.time() * 1000))
        _errcode(await post(client, url, body, self.channel.timeout_s), DINGTALK_TOO_FAST)


class AlertmanagerSender:
    def __init__(self, channel: AlertmanagerChannel, names: SiteNames, environ: Mapping[str, str]):
        self.channel = channel
        self.names = names
        self.url = channel.url.rstrip("/") + "/api/v2/alerts"
        self.token = secret(channel, "token_env", environ, names.site.source)
        self.secrets: tuple[str, ...] = (self.token,) if self.token else ()

    async def send(self, batch: Batch, now_s: float, client: httpx.AsyncClient) -> None:
        alerts = alertmanager_body(self.names, batch, int(now_s * 1000), self.channel.resend_s)
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        await post(client, self.url, json_bytes(alerts), self.channel.timeout_s, headers)


class EmailSender:
    """SMTP through smtplib, in a worker thread (a slow server holds a thread, not the loop)."""

    def __init__(self, channel: EmailChannel, names: SiteNames, environ: Mapping[str, str]):
        self.channel = channel
        self.names = names
        self.password = secret(channel, "password_env", environ, names.site.source)
        self.secrets: tuple[str, ...] = (self.password,) if self.password else ()
        self.tls: ssl.SSLContext | None = None
        if channel.security != "none":
            try:
                self.tls = ssl.create_default_context(cafile=channel.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"cannot read the CA file: {exc}",
                    file=names.site.source,
                    entity=f"notify channel {channel.id!r}",
                    key="ca_file",
                ) from None

    async def send(self, batch: Batch, now_s: float, client: httpx.AsyncClient) -> None:
        c = self.channel
        msg = email_message(self.names, batch, c.sender, c.recipients, now_s)
        await asyncio.to_thread(self._send, msg)

    def _send(self, msg: EmailMessage) -> None:
        c = self.channel
        try:
            smtp: smtplib.SMTP
            if c.security == "ssl":
                smtp = smtplib.SMTP_SSL(c.host, c.smtp_port, timeout=c.timeout_s, context=self.tls)
            else:
                smtp = smtplib.SMTP(c.host, c.smtp_port, timeout=c.timeout_s)
            with smtp:
                smtp.ehlo()
                if c.security == "starttls":
                    smtp.starttls(context=self.tls)
                    smtp.ehlo()
                if c.username:
                    smtp.login(c.username, self.password)
                smtp.send_message(msg)
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"the server cannot: {exc}", retryable=False) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"login refused: {exc.smtp_code}", retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipients refused: {exc.recipients}", retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {text[:200]}", retryable=400 <= exc.smtp_code < 500
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"certificate: {exc.verify_message}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, refused, timed out
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from None


_SENDERS: dict[str, Callable[[Any, SiteNames, Mapping[str, str]], Sender]] = {
    "email": EmailSender,
    "webhook": WebhookSender,
    "wecom": WecomSender,
    "dingtalk": DingtalkSender,
    "alertmanager": AlertmanagerSender,
}


def build_sender(channel: Channel, site: SiteConfig, environ: Mapping[str, str]) -> Sender:
    """The sender of `channel`, its secrets read from `environ` (`ConfigError` if missing)."""
    return _SENDERS[channel.type](channel, SiteNames(site, channel.language), environ)


__all__ = [
    "AlertmanagerSender",
    "DeliveryError",
    "DingtalkSender",
    "EmailSender",
    "RedactingFilter",
    "Redactor",
    "Sender",
    "WebhookSender",
    "WecomSender",
    "build_sender",
    "post",
]
