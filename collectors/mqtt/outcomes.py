"""What becomes of a run of MQTT messages: every message has an outcome.

A run is parsed (topic to meter, payload to readings), the unusable messages are written to
the dead letters and the readings to the store (or its spool), and only then are the
messages acknowledged, in the order received. A crash before the commit means the broker
delivers the message again; idempotent writes make the redelivery harmless.

A message from a device no meter claims is a dead letter (`unknown meter`) and is noted as
an unconfigured device (`collectors.mqtt.discovery`). A gateway's message naming several
meters of which some are not configured stores the readings of the configured ones and is
also a dead letter naming the others: nothing received is dropped unseen.

Whatever a payload does to the parser (a `PayloadError`, or any other exception: a bug of
ours must not stop ingest) makes it a dead letter. When the sink raises something other than
`StoreError`, the batch itself is bad: it is written again message by message, and the
messages the store refuses become dead letters. A `StoreError` from the sink, or an `OSError`
writing the dead letters (disk full), is a `Fault`: nothing is acknowledged, and the
subscriber pauses ingest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from collectors.availability import Availability
from collectors.mqtt.columns import Columns
from collectors.mqtt.discovery import Discovery
from collectors.mqtt.link import Item, topic_of
from collectors.mqtt.payload import PayloadLimits, Record
from collectors.mqtt.routing import Route, TopicRouter, Unrouted
from core.config import PayloadFormat
from core.errors import PayloadError, StoreError
from core.readings import ReadingBatch
from storage.deadletters import DeadLetter, DeadLetters

log = logging.getLogger("epcmon.mqtt")

Sink = Callable[[ReadingBatch], Awaitable[None]]
Parser = Callable[[bytes, PayloadFormat, int, PayloadLimits, Sequence[str]], list[Record]]
"""`collectors.mqtt.payload.parse_records`, or a stand-in for it."""


class Fault(Exception):
    """The run cannot be committed now (the store, or the dead-letter file, refused it)."""


class Outcomes:
    """Parses, commits and acknowledges runs of messages (module doc)."""

    def __init__(
        self,
        router: TopicRouter,
        limits: PayloadLimits,
        sink: Sink,
        dead_letters: DeadLetters,
        availability: Availability,
        parse: Parser,
        discovery: Discovery,
    ) -> None:
        self.router = router
        self.limits = limits
        self.availability = availability
        self.discovery = discovery
        self._sink = sink
        self._dead = dead_letters
        self._parse_records = parse
        self._reported: set[str] = set()

    def parse_run(self, items: Sequence[Item], received_ms: int) -> None:
        """Parse a run's messages into one `Columns` (`parse`); each meter that sent a
        usable message is reported up once."""
        columns = Columns()
        seen: dict[str, None] = {}
        for item in items:
            item.received_ms = received_ms
            self.parse(item, received_ms, columns)
            if item.columns is not None:
                seen.update(dict.fromkeys(columns.meter_id[item.start : item.stop]))
        for meter_id in seen:
            self.availability.ok(meter_id, received_ms)

    def parse(self, item: Item, received_ms: int, columns: Columns) -> None:
        """The item's readings (appended to `columns`), or the reason it is a dead letter
        (or, for a message naming meters not all configured, both)."""
        message = item.message
        item.topic = topic_of(message)
        payload = bytes(message.payload)
        try:
            route = self.router.route(item.topic)
            if route is None:
                reason = f"unknown meter: no meter is mapped to topic {item.topic[:200]!r}"
                self.discovery.saw(self.router.unrouted(item.topic), payload, received_ms, reason)
                raise PayloadError(reason)
            try:
                records = self._parse_records(
                    payload, route.fmt, received_ms, self.limits, route.names
                )
            except PayloadError as exc:
                if route.claims_any():
                    raise
                # a gateway none of whose meters is configured: unknown, whatever it sends
                reason = f"unknown meter: no meter is mapped to topic {item.topic[:200]!r} ({exc})"
                self.discovery.saw(self.router.unrouted(item.topic), payload, received_ms, reason)
                raise PayloadError(reason) from exc
            item.start = len(columns)
            item.stop = self._readings(item, route, records, payload, received_ms, columns)
            item.columns = columns
        except PayloadError as exc:
            item.columns = None
            item.reason = str(exc)
        except Exception as exc:  # a parser bug: the message still gets an outcome
            item.reason = f"parser failed: {type(exc).__name__}: {exc}"
            self.availability.count("mqtt_parser_failures")
            self._report_once(
                f"parser:{type(exc).__name__}",
                "the payload parser failed on a message from %s (dead-lettered): %s",
                item.topic,
                exc,
                exc_info=True,
            )

    def _readings(
        self,
        item: Item,
        route: Route,
        records: list[Record],
        payload: bytes,
        received_ms: int,
        columns: Columns,
    ) -> int:
        """Append the records' readings to `columns`, each of the meter its route gives, and
        return the end of their span; the meters a message names that are not configured
        are noted, and make it a dead letter too (appending nothing if no meter is known)."""
        stop = len(columns)
        if not route.names:
            meter_id = route.meter_id
            for record in records:
                stop = columns.add(meter_id, record)
            return stop
        known_meters: dict[str, None] = {}
        unknown: dict[str, None] = {}
        for record in records:
            known = route.meter_of(record.names)
            if known is None:
                unknown[route.candidate(record.names)] = None
                continue
            known_meters[known] = None
            stop = columns.add(known, record)
        if unknown:
            shown = ", ".join(list(unknown)[:10]) + (" ..." if len(unknown) > 10 else "")
            reason = (
                f"unknown meter: the message on {item.topic[:200]!r} names {len(unknown)} "
                f"meters that are not configured ({shown})"
            )
            for meter_id in unknown:
                where = Unrouted(item.topic, route.route, meter_id)
                self.discovery.saw(where, payload, received_ms, reason)
            if not known_meters:
                raise PayloadError(reason)
            stored = len(known_meters)
            item.reason = f"{reason}; the readings of the {stored} configured ones are stored"
        return stop

    def _report_once(self, key: str, text: str, *args: object, exc_info: bool = False) -> None:
        """Log the first occurrence of a kind of problem (a flood must not flood the log)."""
        if key in self._reported or len(self._reported) > 1_000:
            log.debug(text, *args)
            return
        self._reported.add(key)
        log.warning(text, *args, exc_info=exc_info)

    async def commit(self, items: list[Item]) -> None:
        """Dead letters, then readings; raises `Fault` when either cannot be written now.
        Safe to call again for the same run: what was written is not written twice."""
        await self._write_dead_letters(items)
        if self.discovery.due():
            await asyncio.to_thread(self.discovery.flush)
        pending = [i for i in items if i.columns is not None and i.stop > i.start and not i.stored]
        if not pending:
            return
        columns = pending[0].columns
        assert columns is not None  # one run, one `Columns`
        try:
            await self._sink(columns.batch([(i.start, i.stop) for i in pending]))
        except StoreError as exc:
            raise Fault(f"the store refuses writes: {exc}") from exc
        except Exception as exc:
            self._report_once(
                f"sink:{type(exc).__name__}",
                "the store refused a run of %d messages (%s); writing them one by one",
                len(pending),
                exc,
                exc_info=True,
            )
            await self._isolate(pending)
            await self._write_dead_letters(items)
            return
        for item in pending:
            item.stored = True

    async def _isolate(self, pending: list[Item]) -> None:
        """Write message by message; the ones the store refuses become dead letters."""
        for item in pending:
            try:
                assert item.columns is not None
                await self._sink(item.columns.batch([(item.start, item.stop)]))
            except StoreError as exc:
                raise Fault(f"the store refuses writes: {exc}") from exc
            except Exception as exc:
                item.columns = None
                item.reason = f"store refused: {type(exc).__name__}: {exc}"
                item.dead_written = False  # a message with unknown meters was written before
                self.availability.count("mqtt_store_rejects")
            else:
                item.stored = True

    async def _write_dead_letters(self, items: list[Item]) -> None:
        new = [i for i in items if i.reason and not i.dead_written]
        if not new:
            return
        letters = [
            DeadLetter(i.topic, i.reason, bytes(i.message.payload), i.received_ms) for i in new
        ]
        try:
            await asyncio.to_thread(self._dead.write, letters)
        except OSError as exc:
            raise Fault(f"the dead letters cannot be written: {exc}") from exc
        for item in new:
            item.dead_written = True
            self._report_once(
                f"dead:{item.reason.split(':', 1)[0][:60]}",
                "MQTT message from %s dead-lettered (first of its kind): %s",
                item.topic,
                item.reason[:300],
            )
        self.availability.count("mqtt_dead_letters", len(new))

    def finish(self, items: list[Item]) -> None:
        """Acknowledge a committed run in receive order and free its buffer slots."""
        if not items:
            return
        link = items[0].link
        acked = link.ack(items)
        link.release(len(items))
        self.availability.count("mqtt_messages", acked)
        self.availability.count(
            "mqtt_readings", sum(i.stop - i.start for i in items if i.columns is not None)
        )
        if acked < len(items):
            # committed, but the connection they came on is gone: the broker sends them
            # again and the idempotent store takes them once
            self.availability.count("mqtt_unacked_after_reconnect", len(items) - acked)
