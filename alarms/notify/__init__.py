"""Delivering alarm changes: e-mail, a generic JSON webhook, WeCom and DingTalk robots,
Alertmanager.

| module | job |
|---|---|
| `dispatcher` | `NotifyDispatcher`: `dispatch()` queues, `run(stop)` delivers (the supervised part) |
| `outbox` | one channel's queue and timing: quiet hours, digest, rate limit, retries (pure) |
| `notice`, `render` | the words: names from the site file, local times, text and markdown (pure) |
| `formats` | each channel's wire format (pure) |
| `senders` | the I/O (httpx, smtplib) and the secrets, read from the environment |

Settings: `[notify]` and `[[notify.channels]]` (`core.config.notify`).
"""

from alarms.notify.dispatcher import ChannelStats, NotifyDispatcher

__all__ = ["ChannelStats", "NotifyDispatcher"]
