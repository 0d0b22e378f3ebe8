"""Where alarms are delivered: `[notify]` and its `[[notify.channels]]`.

One table per channel, its `type` deciding which keys it takes: `email` (SMTP), `webhook`
(generic JSON), `wecom` (企业微信 group robot), `dingtalk` (钉钉 robot), `alertmanager`
(Prometheus Alertmanager's `/api/v2/alerts`). Every secret (SMTP password, robot keys,
signing secrets, a webhook URL that is itself a secret) is named here by the environment
variable that carries it (`*_env`), never written in the file: a `password`, `key`, `token`
or `secret` key is refused with a message saying which `*_env` key to use.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from core.config.base import EntityId, FieldError, _Model

EnvName = Annotated[str, Field(pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", max_length=128)]
"""The name of an environment variable (empty: none)."""

HttpUrl = Annotated[str, Field(pattern=r"^(https?://[^\s/?#]+(/[^\s#]*)?)?$")]

SeverityName = Literal["info", "warning", "critical"]
KindName = Literal["raised", "updated", "cleared", "acknowledged"]

_WINDOW = r"^(([01]\d|2[0-3]):[0-5]\d)-(([01]\d|2[0-3]):[0-5]\d)$"

# a secret written in the file by mistake: the key to use instead
_SECRET_KEYS = {
    "password": "password_env",
    "smtp_password": "password_env",
    "key": "key_env",
    "token": "token_env",
    "access_token": "token_env",
    "secret": "secret_env",
}


def parse_window(text: str) -> tuple[time, time] | None:
    """`"22:00-07:00"` -> (22:00, 07:00); empty -> None. The window may wrap midnight."""
    if not text:
        return None
    start, end = text.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


class _Channel(_Model):
    """What every channel takes."""

    # a secret put in the file by mistake must not be echoed by a validation error
    model_config = ConfigDict(hide_input_in_errors=True)

    id: EntityId
    """Short name of the channel, in logs and in `/healthz` (`notify <id>`)."""
    enabled: bool = True
    """`false`: configured but sends nothing."""
    min_severity: SeverityName = "warning"
    """Least severity sent: `info`, `warning` or `critical`."""
    kinds: tuple[KindName, ...] = ("raised", "cleared")
    """Which changes are sent: `raised`, `updated` (severity or value moved), `cleared`,
    `acknowledged`."""
    rules: tuple[str, ...] = ()
    """Only alarms of these rules (rule ids of `[alarms]`); empty: every rule."""
    language: Literal["zh", "en"] = "zh"
    """Language of the messages (names come from the site file: `name`, or `name_en`)."""
    quiet_hours: str = Field(default="", pattern=f"({_WINDOW})|^$")
    """Local time window with nothing sent, e.g. `"22:00-07:00"` (may wrap midnight); what
    comes in meanwhile is sent as one summary when it ends. Empty: never quiet."""
    quiet_critical: bool = True
    """Critical alarms are sent during quiet hours all the same."""
    digest_at: time | None = None
    """Local time of a daily digest, e.g. `"08:30"`: the channel then sends nothing at once,
    it collects the day's changes and sends them as one message at that time (nothing when
    there were none). Empty: every change is sent as it comes."""
    rate_per_hour: float = Field(default=30.0, gt=0, le=3600)
    """Messages per hour the channel sends, sustained; changes beyond it wait and go out
    together in the next message (nothing is dropped for the rate)."""
    rate_burst: int = Field(default=5, ge=1, le=100)
    """Messages the channel may send at once before `rate_per_hour` applies."""
    retries: int = Field(default=8, ge=0, le=50)
    """Retries of a failed delivery (connection error, timeout, HTTP 408/429/5xx, a robot's
    rate-limit answer), with exponential backoff; then the message is given up and logged."""
    retry_backoff_s: float = Field(default=5.0, gt=0, le=3600)
    """First wait before a retry; doubled each retry up to `retry_max_s`."""
    retry_max_s: float = Field(default=600.0, gt=0, le=86_400)
    """Longest wait between two retries."""
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Timeout of one delivery (connect, send, answer)."""
    queue: int = Field(default=1000, ge=10, le=1_000_000)
    """Most changes the channel holds undelivered; past it the oldest are dropped, counted
    and logged (a receiver down for days must not fill the memory)."""

    @field_validator("quiet_hours")
    @classmethod
    def _not_empty_window(cls, value: str) -> str:
        window = parse_window(value)
        if window is not None and window[0] == window[1]:
            raise ValueError("quiet hours start and end at the same time")
        return value

    @field_validator("digest_at")
    @classmethod
    def _whole_minute(cls, value: time | None) -> time | None:
        if value is not None and (value.second or value.microsecond or value.tzinfo):
            raise ValueError("a local time in whole minutes, e.g. '08:30'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_in_files(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key, instead in _SECRET_KEYS.items():
                if key in data:
                    raise ValueError(
                        f"`{key}` does not belong in the site file: put it in an environment "
                        f"variable and name that variable in `{instead}`"
                    )
        return data

    @property
    def quiet_window(self) -> tuple[time, time] | None:
        return parse_window(self.quiet_hours)


class EmailChannel(_Channel):
    """E-mail over SMTP: `type = "email"`."""

    type: Literal["email"]
    """The kind of channel; it decides which other keys the table takes."""
    host: str = Field(min_length=1)
    """The SMTP server (relay) to send through."""
    port: int = Field(default=0, ge=0, le=65535)
    """Its port; 0: 587 with `starttls`, 465 with `ssl`, 25 with `none`."""
    security: Literal["starttls", "ssl", "none"] = "starttls"
    """`starttls` (plain connection upgraded to TLS, refused if the server cannot), `ssl`
    (TLS from the start, often port 465), `none` (clear text: only to a relay on the same
    host or a trusted network)."""
    ca_file: str = ""
    """PEM file of the CA that signed the server's certificate (an internal mail server);
    empty: the system's CAs."""
    username: str = ""
    """SMTP login; empty: no authentication."""
    password_env: EnvName = ""
    """The environment variable holding the SMTP password (required with `username`)."""
    sender: str = Field(min_length=3, pattern=r"^[^\s@]+@[^\s@]+$|^.*<[^\s@]+@[^\s@]+>$")
    """From address, e.g. `epcmon@example.gov.cn` or `能源监测 <epcmon@example.gov.cn>`."""
    recipients: tuple[Annotated[str, Field(pattern=r"^[^\s@]+@[^\s@]+$")], ...] = Field(
        min_length=1
    )
    """To addresses."""

    @model_validator(mode="after")
    def _password_with_username(self) -> EmailChannel:
        if self.username and not self.password_env:
            raise FieldError("password_env", "a username needs its password's variable")
        if self.password_env and not self.username:
            raise FieldError("username", "a password is sent only with a username")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "none": 25}[self.security]


class WebhookChannel(_Channel):
    """A generic JSON webhook: `type = "webhook"`; POSTs the changes as JSON (README)."""

    type: Literal["webhook"]
    """The kind of channel; it decides which other keys the table takes."""
    url: HttpUrl = ""
    """Where to POST, `http(s)://host[:port]/path`."""
    url_env: EnvName = ""
    """Or: the environment variable holding the URL (a URL that is itself a secret)."""
    token_env: EnvName = ""
    """The variable holding a bearer token sent as `Authorization: Bearer ...`; empty: none."""
    secret_env: EnvName = ""
    """The variable holding a signing secret: the body's HMAC-SHA256 is sent as
    `X-Epcmon-Signature-256: sha256=<hex>`; empty: unsigned."""

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        if bool(self.url) == bool(self.url_env):
            raise FieldError("url", "give exactly one of `url` or `url_env`")
        return self


class WecomChannel(_Channel):
    """A WeCom (企业微信) group robot: `type = "wecom"`; markdown messages."""

    type: Literal["wecom"]
    """The kind of channel; it decides which other keys the table takes."""
    key_env: EnvName = Field(min_length=1)
    """The variable holding the robot's key (the `key=` of its webhook address)."""
    url: HttpUrl = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    """The robot API (change it only for a proxy)."""
    rate_per_hour: float = Field(default=600.0, gt=0, le=1200)
    """Messages per hour, sustained (WeCom allows a robot 20 a minute)."""


class DingtalkChannel(_Channel):
    """A DingTalk (钉钉) custom robot: `type = "dingtalk"`; markdown messages."""

    type: Literal["dingtalk"]
    """The kind of channel; it decides which other keys the table takes."""
    token_env: EnvName = Field(min_length=1)
    """The variable holding the robot's `access_token`."""
    secret_env: EnvName = ""
    """The variable holding the robot's signing secret (security setting 加签, `SEC...`):
    each request then carries `timestamp` and its HMAC-SHA256 `sign`. Empty: unsigned (the
    robot must then use a keyword or an IP allow-list)."""
    at_mobiles: tuple[Annotated[str, Field(pattern=r"^\+?[0-9-]{5,20}$")], ...] = ()
    """Mobile numbers to @-mention with every message."""
    url: HttpUrl = "https://oapi.dingtalk.com/robot/send"
    """The robot API (change it only for a proxy)."""
    rate_per_hour: float = Field(default=600.0, gt=0, le=1200)
    """Messages per hour, sustained (DingTalk allows a robot 20 a minute)."""


class AlertmanagerChannel(_Channel):
    """A Prometheus Alertmanager: `type = "alertmanager"` (quiet hours and digests: its own).

    Alertmanager routes, groups, silences and inhibits by itself, so quiet hours and digests
    belong in its own configuration (time_intervals, group_interval)."""

    type: Literal["alertmanager"]
    """The kind of channel; it decides which other keys the table takes."""
    url: HttpUrl = Field(min_length=1)
    """Alertmanager's base address, e.g. `http://127.0.0.1:9093`; alerts go to
    `<url>/api/v2/alerts`."""
    kinds: tuple[KindName, ...] = ("raised", "updated", "cleared", "acknowledged")
    """Which changes are sent (each sends the alarm's current state)."""
    rate_per_hour: float = Field(default=600.0, gt=0, le=3600)
    """Requests per hour, sustained (resends not counted); changes beyond it wait and go in
    the next request, which carries every change that waits."""
    resend_s: float = Field(default=60.0, ge=1, le=3600)
    """Active alarms are sent again this often, each valid for 4× as long (`endsAt`), as
    Prometheus does: Alertmanager resolves an alert that stops coming (so it resolves them
    by itself if epcmon stops)."""
    token_env: EnvName = ""
    """The variable holding a bearer token (an Alertmanager behind an authenticating proxy)."""

    @model_validator(mode="after")
    def _no_quiet_or_digest(self) -> AlertmanagerChannel:
        if self.quiet_hours:
            raise FieldError("quiet_hours", "Alertmanager has its own (time_intervals)")
        if self.digest_at is not None:
            raise FieldError("digest_at", "Alertmanager groups alerts by itself (group_interval)")
        return self


Channel = Annotated[
    EmailChannel | WebhookChannel | WecomChannel | DingtalkChannel | AlertmanagerChannel,
    Field(discriminator="type"),
]


class NotifyConfig(_Model):
    """Delivering alarms: `[notify]`, one `[[notify.channels]]` per receiver."""

    enabled: bool = True
    """`false`: no alarm is delivered anywhere (they are still raised and shown)."""
    channels: tuple[Channel, ...] = ()
    """The receivers; every alarm change goes to each channel whose filters it passes."""
    remember: int = Field(default=10_000, ge=100, le=1_000_000)
    """How many recent changes are remembered to send a repeated one only once."""

    @field_validator("channels")
    @classmethod
    def _unique_ids(cls, value: tuple[_Channel, ...]) -> tuple[_Channel, ...]:
        seen: set[str] = set()
        for channel in value:
            if channel.id in seen:
                raise ValueError(f"two channels are called {channel.id!r}")
            seen.add(channel.id)
        return value


__all__ = [
    "AlertmanagerChannel",
    "Channel",
    "DingtalkChannel",
    "EmailChannel",
    "NotifyConfig",
    "WebhookChannel",
    "WecomChannel",
    "parse_window",
]
