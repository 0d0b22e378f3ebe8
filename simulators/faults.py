"""Faults the simulated meters show, on purpose and only when asked.

A `FaultPlan` says, per meter id, what goes wrong (`core.config.MeterFaults`, also the
site file's `[simulation.faults.<meter id>]`):

| field | Modbus | MQTT |
|---|---|---|
| `offline` (+ `offline_from_ms`/`offline_until_ms`) | no answer at all: the client times out | nothing published |
| `delay_s` | every answer that late (client timeouts) | – |
| `busy_rate` | exception 6, server device busy | – |
| `gateway_no_response_rate` | exception 11, gateway target failed to respond | – |
| `counter_reset_at_ms` | counters restart from zero | same |
| `rollover` (+ `rollover_at_ms`) | integer counter registers wrap at 32 bits | – |
| `spike_rate`, `spike_factor` | instantaneous values x factor | same |
| `malformed_rate` | – | truncated JSON, a text value, or no timestamp |
| `duplicate_rate` | – | the same message twice |
| `clock_skew_s` | – | device timestamps off by this much |

Per gateway id (`core.config.GatewayFaults`, the site file's
`[simulation.gateway_faults.<gateway id>]`), faults of the gateway's connections, for every
unit behind it (live servers only; a generated history does not show them):

| field | what the client sees |
|---|---|
| `drop_rate` | the gateway closes the connection on a request instead of answering |
| `garbage_rate`, `garbage` | an answer that is not one: random bytes, a wrong byte count, a truncated or oversized MBAP frame, a wrong function code, transaction id or unit id |
| `from_ms`/`until_ms` | the window in which both apply |

Decisions are drawn from a generator seeded by (plan seed, meter id) or (plan seed, gateway
id), so a run with the same plan and the same sequence of requests sees the same faults. An
empty plan injects nothing.

A plan also carries the anomalies with ground truth (`core.config.Anomaly`,
`[[simulation.anomalies]]`): those that change what a meter reports (`silent`,
`counter_reset`, `jump`) are played here, live and in a history; the physical ones (a leak,
a chiller left on, a base-load step, a demand peak) by the model (`SiteModel(...,
anomalies=plan.anomalies)`); `simulators.anomalies` holds their truth.

`FaultPlan.parse(["E-D01:busy_rate=0.2,delay_s=1.5", "W-MAIN:offline", "gw-1:drop_rate=0.15",
"W-MAIN:leak,start=2025-08-01T22:00:00+08:00,end=2025-08-03T08:00:00+08:00"])` reads the CLI's
`--fault` options; the keys say whether an id is a meter's or a gateway's, or the anomaly.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from collectors.modbus.decode import RegisterSpec, RegisterType
from core.config import ANOMALY_KINDS, Anomaly, GatewayFaults, Meter, MeterFaults, SiteConfig
from core.config.anomalies import unsuited
from core.config.faults import GarbageKind
from core.errors import ConfigError
from core.quantities import QUANTITIES
from simulators import rand
from simulators.anomalies import DataAnomalies

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

INSTANTANEOUS = frozenset(
    {
        "power",
        "power_l1",
        "power_l2",
        "power_l3",
        "current_l1",
        "current_l2",
        "current_l3",
        "reactive_power",
        "apparent_power",
        "flow",
        "thermal_power",
        "cooling_power",
        "heating_power",
    }
)
"""Quantities a spike multiplies."""
COUNTERS = frozenset(q for q, spec in QUANTITIES.items() if spec.counter)
DEFAULT_ROLLOVER_DELAY_MS = 60_000

GARBAGE_KINDS: tuple[GarbageKind, ...] = (
    "random",
    "length",
    "truncated",
    "oversized",
    "function",
    "transaction",
    "unit",
)
"""The kinds of garbage a gateway can send (`any` draws one of these per answer)."""
_METER_KEYS = frozenset(MeterFaults.model_fields)
_GATEWAY_KEYS = frozenset(GatewayFaults.model_fields)

__all__ = [
    "GARBAGE_KINDS",
    "FaultInjector",
    "FaultPlan",
    "GatewayFaults",
    "GatewayOutcome",
    "MeterFaults",
    "ModbusOutcome",
    "apply_to_series",
    "garble",
]


@dataclass(frozen=True)
class FaultPlan:
    """Faults by meter id and by gateway id; meters and gateways not listed behave."""

    meters: Mapping[str, MeterFaults] = field(default_factory=dict)
    seed: int = 0
    gateways: Mapping[str, GatewayFaults] = field(default_factory=dict)
    anomalies: tuple[Anomaly, ...] = ()
    """Anomalies with ground truth; the model plays the physical ones."""
    data: DataAnomalies = field(init=False, repr=False, compare=False)
    """The anomalies that change what meters report, by meter."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", DataAnomalies(self.anomalies))

    def for_meter(self, meter_id: str) -> MeterFaults | None:
        return self.meters.get(meter_id)

    def for_gateway(self, gateway_id: str) -> GatewayFaults | None:
        return self.gateways.get(gateway_id)

    @property
    def empty(self) -> bool:
        return not self.meters and not self.gateways and not self.anomalies

    @classmethod
    def from_site(cls, site: SiteConfig) -> FaultPlan:
        return cls(
            dict(site.simulation.faults),
            site.simulation.seed,
            dict(site.simulation.gateway_faults),
            site.simulation.anomalies,
        )

    def merged(self, other: FaultPlan) -> FaultPlan:
        """This plan with `other`'s meters and gateways added (other wins per id) and its
        anomalies after this one's."""
        return FaultPlan(
            {**self.meters, **other.meters},
            other.seed if not other.empty else self.seed,
            {**self.gateways, **other.gateways},
            (*self.anomalies, *other.anomalies),
        )

    @classmethod
    def parse(cls, specs: Sequence[str], *, seed: int = 0) -> FaultPlan:
        """`ID:key=value,key=value` or `ID:flag`, e.g. `E-D01:offline`; the keys say whether
        ID is a meter (`MeterFaults`) or a gateway (`GatewayFaults`, e.g. `gw-1:drop_rate=0.15`)."""
        meters: dict[str, MeterFaults] = {}
        gateways: dict[str, GatewayFaults] = {}
        anomalies: list[Anomaly] = []
        for spec in specs:
            target, sep, rest = spec.partition(":")
            if not sep or not target or not rest:
                raise ConfigError(
                    f"fault {spec!r}: expected METER:key=value[,key=value] "
                    f"or GATEWAY:key=value[,key=value]"
                )
            data: dict[str, object] = {}
            for item in rest.split(","):
                key, eq, value = item.partition("=")
                key = key.strip()
                data[key] = value.strip() if eq else True
            kinds = [k for k in data if k in ANOMALY_KINDS]
            if kinds:
                anomalies.append(_parse_anomaly(spec, target, kinds, data))
                continue
            gateway_keys = sorted(k for k in data if k in _GATEWAY_KEYS)
            meter_keys = sorted(k for k in data if k not in _GATEWAY_KEYS)
            if gateway_keys and meter_keys:
                raise ConfigError(
                    f"fault {spec!r}: {', '.join(gateway_keys)} are a gateway's faults, "
                    f"{', '.join(meter_keys)} a meter's: give them separately"
                )
            model: type[MeterFaults] | type[GatewayFaults]
            model, what = (GatewayFaults, "gateway") if gateway_keys else (MeterFaults, "meter")
            try:
                parsed = model.model_validate(data)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"])
                raise ConfigError(
                    f"fault {spec!r}: {where}: {err['msg']}", entity=f"{what} {target!r}"
                ) from None
            if isinstance(parsed, GatewayFaults):
                gateways[target] = parsed
            else:
                meters[target] = parsed
        return cls(meters, seed, gateways, tuple(anomalies))

    def check(self, site: SiteConfig) -> None:
        for meter_id in self.meters:
            if meter_id not in site.meters_by_id:
                raise ConfigError(f"fault for unknown meter {meter_id!r}", file=site.source)
        for gateway_id in self.gateways:
            if gateway_id not in site.gateways_by_id:
                raise ConfigError(f"fault for unknown gateway {gateway_id!r}", file=site.source)
        for a in self.anomalies:
            if a.meter not in site.meters_by_id:
                raise ConfigError(f"{a.kind} at unknown meter {a.meter!r}", file=site.source)
            reason = unsuited(a, site)
            if reason is not None:
                raise ConfigError(f"{a.kind} at {a.meter}: {reason}", file=site.source)


def _parse_anomaly(
    spec: str, target: str, kinds: Sequence[str], data: dict[str, object]
) -> Anomaly:
    """`METER:leak,start=...,end=...,flow_m3h=0.6` as an `Anomaly`."""
    if len(kinds) > 1 or data[kinds[0]] is not True:
        raise ConfigError(f"fault {spec!r}: name one anomaly, as a flag ({target}:leak,start=...)")
    fields = {k: v for k, v in data.items() if k != kinds[0]}
    if "kind" in fields or "meter" in fields:
        raise ConfigError(f"fault {spec!r}: the meter comes before ':', the kind after it")
    try:
        return Anomaly.model_validate({"kind": kinds[0], "meter": target, **fields})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        cause = err.get("ctx", {}).get("error")
        where = ".".join(str(p) for p in err["loc"]) or getattr(cause, "key", "")
        msg = str(cause) if isinstance(cause, ValueError) else err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required"
        raise ConfigError(f"fault {spec!r}: {where}: {msg}", entity=f"meter {target!r}") from None


def _offline(f: MeterFaults, now_ms: int) -> bool:
    if not f.offline:
        return False
    if f.offline_from_ms is not None and now_ms < f.offline_from_ms:
        return False
    return f.offline_until_ms is None or now_ms < f.offline_until_ms


class ModbusOutcome(Enum):
    ANSWER = "answer"
    OFFLINE = "offline"
    BUSY = "busy"
    GATEWAY_NO_RESPONSE = "gateway_no_response"


class GatewayOutcome(Enum):
    """What a gateway does with one request, before any unit sees it."""

    ANSWER = "answer"
    DROP = "drop"
    """Close the connection instead of answering."""
    GARBAGE = "garbage"
    """Send garbage instead of the answer."""


def _in_window(start_ms: int | None, end_ms: int | None, now_ms: int) -> bool:
    return (start_ms is None or now_ms >= start_ms) and (end_ms is None or now_ms < end_ms)


def garble(kind: GarbageKind, frame: bytes, rng: np.random.Generator) -> bytes:
    """Garbage in place of the Modbus TCP answer `frame` (MBAP header + PDU), as broken
    gateways, serial noise and half-written buffers produce it. Pure but for `rng`."""
    if kind == "any":
        kind = GARBAGE_KINDS[int(rng.integers(0, len(GARBAGE_KINDS)))]
    header, unit, pdu = frame[:6], frame[6], frame[7:]
    tid = int.from_bytes(frame[0:2], "big")

    def framed(tid: int, unit: int, pdu: bytes) -> bytes:
        return (
            tid.to_bytes(2, "big")
            + b"\x00\x00"
            + (len(pdu) + 1).to_bytes(2, "big")
            + bytes([unit])
            + pdu
        )

    if kind == "random":
        return bytes(rng.integers(0, 256, size=int(rng.integers(1, 41)), dtype=np.uint8))
    if kind == "length":
        fc = pdu[0]
        if fc & 0x80 or len(pdu) < 4:  # an exception answer: one byte too many
            return framed(tid, unit, pdu + b"\x00")
        count, data = pdu[1], pdu[2:]
        way = int(rng.integers(0, 3))
        if way == 0:  # the byte count promises more than the frame holds
            return framed(tid, unit, bytes([fc, count]) + data[:-2])
        if way == 1:  # one register fewer than asked, consistently framed
            return framed(tid, unit, bytes([fc, count - 2]) + data[:-2])
        return framed(tid, unit, bytes([fc, (count + 2) & 0xFF]) + data + b"\x12\x34")
    if kind == "truncated":  # the header promises the whole frame; part of it comes
        return frame[: int(rng.integers(7, len(frame)))]
    if kind == "oversized":  # beyond the 253 bytes a PDU may have
        size = int(rng.integers(300, 1200))
        body = bytes([unit]) + pdu + bytes(size - 1 - len(pdu))
        return header[:4] + size.to_bytes(2, "big") + body
    if kind == "function":
        fc = pdu[0] & 0x7F
        way = int(rng.integers(0, 3))
        if way == 0:  # the other read: same layout, easy to take for the answer
            return framed(tid, unit, bytes([7 - fc if fc in (3, 4) else 3]) + pdu[1:])
        if way == 1:  # a write-multiple echo (address, count)
            return framed(tid, unit, b"\x10\x00\x00\x00\x01")
        return framed(tid, unit, bytes([0x41]) + pdu[1:])  # a function nobody defined
    if kind == "transaction":
        return framed((tid + int(rng.integers(1, 1000))) % 0x10000, unit, pdu)
    if kind == "unit":
        return framed(tid, (unit + int(rng.integers(1, 255))) % 0x100, pdu)
    raise ValueError(f"unknown garbage kind {kind!r}")


def _wrap(raw: float, kind: RegisterType) -> float:
    if kind is RegisterType.UINT32:
        return float(raw % 2**32)
    # signed 32-bit (and the TUF's LONG integer part): two's complement overflow
    return float((raw + 2**31) % 2**32 - 2**31)


class FaultInjector:
    """Runtime decisions for one server (a gateway or a publisher); not thread-safe."""

    def __init__(self, plan: FaultPlan, start_ms: int) -> None:
        self.plan = plan
        self.start_ms = start_ms
        self._rngs: dict[str, np.random.Generator] = {}
        self._at: dict[tuple[str, str, int], float] = {}
        self.injected: dict[str, int] = {}

    def _rng(self, meter_id: str) -> np.random.Generator:
        rng = self._rngs.get(meter_id)
        if rng is None:
            rng = np.random.default_rng([self.plan.seed, zlib.crc32(meter_id.encode())])
            self._rngs[meter_id] = rng
        return rng

    def _count(self, what: str) -> None:
        self.injected[what] = self.injected.get(what, 0) + 1

    def offline(self, meter_id: str, now_ms: int) -> bool:
        f = self.plan.for_meter(meter_id)
        return (f is not None and _offline(f, now_ms)) or self.plan.data.silent(meter_id, now_ms)

    def modbus(self, meter_id: str, now_ms: int) -> tuple[ModbusOutcome, float]:
        """What happens to one request: the outcome and the answer's delay (s)."""
        if self.plan.data.silent(meter_id, now_ms):
            self._count("silent")
            return ModbusOutcome.OFFLINE, 0.0
        f = self.plan.for_meter(meter_id)
        if f is None:
            return ModbusOutcome.ANSWER, 0.0
        if _offline(f, now_ms):
            self._count("offline")
            return ModbusOutcome.OFFLINE, 0.0
        if f.busy_rate or f.gateway_no_response_rate:
            u = float(self._rng(meter_id).random())
            if u < f.busy_rate:
                self._count("busy")
                return ModbusOutcome.BUSY, f.delay_s
            if u < f.busy_rate + f.gateway_no_response_rate:
                self._count("gateway_no_response")
                return ModbusOutcome.GATEWAY_NO_RESPONSE, f.delay_s
        if f.delay_s:
            self._count("delay")
        return ModbusOutcome.ANSWER, f.delay_s

    def gateway(self, gateway_id: str, now_ms: int) -> GatewayOutcome:
        """What gateway `gateway_id` does with one request."""
        f = self.plan.for_gateway(gateway_id)
        if f is None or not _in_window(f.from_ms, f.until_ms, now_ms):
            return GatewayOutcome.ANSWER
        if not (f.drop_rate or f.garbage_rate):
            return GatewayOutcome.ANSWER
        u = float(self._rng(f"gateway:{gateway_id}").random())
        if u < f.drop_rate:
            self._count("drop")
            return GatewayOutcome.DROP
        if u < f.drop_rate + f.garbage_rate:
            self._count("garbage")
            return GatewayOutcome.GARBAGE
        return GatewayOutcome.ANSWER

    def garbage(self, gateway_id: str, frame: bytes) -> bytes:
        """Garbage of the gateway's configured kind in place of the answer `frame`."""
        f = self.plan.for_gateway(gateway_id)
        kind: GarbageKind = f.garbage if f is not None else "any"
        rng = self._rng(f"gateway:{gateway_id}")
        if kind == "any":
            kind = GARBAGE_KINDS[int(rng.integers(0, len(GARBAGE_KINDS)))]
        self._count(f"garbage_{kind}")
        return garble(kind, frame, rng)

    def _value_at(
        self, meter_id: str, quantity: str, at_ms: int, source: Callable[[int], dict[str, float]]
    ) -> float:
        k = (meter_id, quantity, at_ms)
        if k not in self._at:
            self._at[k] = float(source(at_ms).get(quantity, 0.0))
        return self._at[k]

    def values(
        self,
        meter_id: str,
        now_ms: int,
        values: dict[str, float],
        source: Callable[[int], dict[str, float]],
    ) -> dict[str, float]:
        """Counter resets, jumps and spikes applied to one reading's values."""
        f = self.plan.for_meter(meter_id)
        events = self.plan.data.counter_events(meter_id)
        if f is None and not events:
            return values
        out = dict(values)
        if events:
            for q in COUNTERS & out.keys():

                def raw_at(at: int, q: str = q) -> float:
                    return self._value_at(meter_id, q, at, source)

                offset = self.plan.data.counter_offset(meter_id, now_ms, raw_at)
                out[q] = max(0.0, out[q] + offset)
        if f is None:
            return out
        if f.counter_reset_at_ms is not None and now_ms >= f.counter_reset_at_ms:
            for q in COUNTERS & out.keys():
                base = self._value_at(meter_id, q, f.counter_reset_at_ms, source)
                out[q] = max(0.0, out[q] - base)
        if f.spike_rate and float(self._rng(meter_id).random()) < f.spike_rate:
            self._count("spike")
            for q in INSTANTANEOUS & out.keys():
                out[q] *= f.spike_factor
        return out

    def rollover_value(
        self,
        meter_id: str,
        quantity: str,
        now_ms: int,
        value: float,
        spec: RegisterSpec,
        ratio: float,
        source: Callable[[int], dict[str, float]],
        factor: float,
    ) -> float:
        """The value whose encoding is the wrapped raw register (integer counters only).
        `factor` converts the canonical value to the register's unit."""
        f = self.plan.for_meter(meter_id)
        if f is None or not f.rollover or quantity not in COUNTERS:
            return value
        if spec.type not in (RegisterType.UINT32, RegisterType.INT32, RegisterType.INT32_FLOAT32):
            return value
        at = (
            f.rollover_at_ms
            if f.rollover_at_ms is not None
            else self.start_ms + DEFAULT_ROLLOVER_DELAY_MS
        )
        step = spec.scale * ratio
        raw_at = self._value_at(meter_id, quantity, at, source) / factor / step
        top = 2**32 if spec.type is RegisterType.UINT32 else 2**31
        shift = top - raw_at  # the raw value reaches the wrap point at `at`
        raw = value / step + shift
        return _wrap(raw, RegisterType.UINT32 if top == 2**32 else RegisterType.INT32) * step

    def mqtt(self, meter_id: str, now_ms: int) -> tuple[bool, bool, bool, int]:
        """(publish at all, malformed, duplicate, clock skew ms) for one message."""
        if self.plan.data.silent(meter_id, now_ms):
            self._count("silent")
            return False, False, False, 0
        f = self.plan.for_meter(meter_id)
        if f is None:
            return True, False, False, 0
        if _offline(f, now_ms):
            self._count("offline")
            return False, False, False, 0
        rng = self._rng(meter_id)
        malformed = bool(f.malformed_rate) and float(rng.random()) < f.malformed_rate
        duplicate = bool(f.duplicate_rate) and float(rng.random()) < f.duplicate_rate
        if malformed:
            self._count("malformed")
        if duplicate:
            self._count("duplicate")
        return True, malformed, duplicate, int(f.clock_skew_s * 1000)

    def malform(self, meter_id: str, payload: bytes) -> bytes:
        """One of the ways devices and relays break JSON."""
        rng = self._rng(meter_id)
        kind = int(rng.integers(0, 4))
        if kind == 0:  # cut short (a relay's buffer, a lost TCP segment)
            return payload[: max(1, int(len(payload) * float(rng.uniform(0.2, 0.8))))]
        if kind == 1:  # a sensor error written as text
            doc = json.loads(payload)
            _replace_first_number(doc, "ERR")
            return json.dumps(doc, separators=(",", ":")).encode()
        if kind == 2:  # no timestamp
            doc = json.loads(payload)
            for k in ("ts", "time", "Time", "timestamp"):
                doc.pop(k, None)
            return json.dumps(doc, separators=(",", ":")).encode()
        return b"\xff\xfe" + payload[:8]  # not UTF-8 at all


def _replace_first_number(doc: object, text: str) -> bool:
    if isinstance(doc, dict):
        for k, v in doc.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k.lower() not in ("ts",):
                doc[k] = text
                return True
            if _replace_first_number(v, text):
                return True
    return False


# ------------------------------------------------------------------ history


def apply_to_series(
    plan: FaultPlan,
    meter: Meter,
    quantity: str,
    ts: I64,
    values: F64,
    all_values: Mapping[str, F64],
    *,
    site: SiteConfig | None = None,
    counter_at: Callable[[int], float] | None = None,
) -> tuple[I64, F64]:
    """What a collector would have stored of one series from a faulty meter: readings lost
    to timeouts, exceptions and malformed messages dropped, silent meters, counters reset,
    jumped or wrapped, spikes, device clock skew, duplicates. `counter_at(ms)`: the true
    counter at any instant (a reset or jump before `ts[0]` needs it; without it, the
    series is interpolated)."""
    f = plan.for_meter(meter.id)
    if not plan.data.affects(meter.id):
        if f is None:
            return ts, values
    elif f is None:
        f = MeterFaults()

    def raw_at(at: int) -> float:
        if counter_at is not None:
            return counter_at(at)
        return float(np.interp(at, ts, values))

    key = rand.key(plan.seed, "history-faults", meter.id)
    sec = ts // 1000
    v = values.astype(np.float64, copy=True)
    keep = np.ones(len(ts), dtype=bool)
    if f.offline:
        lo = f.offline_from_ms if f.offline_from_ms is not None else np.iinfo(np.int64).min
        hi = f.offline_until_ms if f.offline_until_ms is not None else np.iinfo(np.int64).max
        keep &= ~((ts >= lo) & (ts < hi))
    keep &= ~plan.data.silent_mask(meter.id, ts)
    if meter.modbus is not None:
        retries = 2
        timeout = 1.0
        if site is not None:
            gw = site.gateways_by_id[meter.modbus.gateway]
            retries, timeout = gw.busy_retries, gw.timeout_s
        if f.delay_s >= timeout:
            keep[:] = False
        p_lost = f.gateway_no_response_rate + f.busy_rate ** (1 + retries)
        if p_lost:
            keep &= rand.uniform(key ^ 1, sec) >= p_lost
    else:
        if f.malformed_rate:
            keep &= rand.uniform(key ^ 2, sec) >= f.malformed_rate
    if quantity in COUNTERS:
        if plan.data.counter_events(meter.id):
            v = np.maximum(v + plan.data.counter_offsets(meter.id, ts, raw_at), 0.0)
        if f.counter_reset_at_ms is not None:
            at = f.counter_reset_at_ms
            base = raw_at(at)
            after = ts >= at
            v[after] = np.maximum(v[after] - base, 0.0)
        if f.rollover and meter.modbus is not None:
            v = _rollover_series(meter, quantity, ts, v, f)
    if quantity in INSTANTANEOUS and f.spike_rate:
        spiked = rand.uniform(key ^ 3, sec) < f.spike_rate
        v[spiked] *= f.spike_factor
    out_ts = ts
    if meter.mqtt is not None and f.clock_skew_s:
        out_ts = ts + int(f.clock_skew_s * 1000)
    out_ts, v = out_ts[keep], v[keep]
    if meter.mqtt is not None and f.duplicate_rate:
        dup = rand.uniform(key ^ 4, sec[keep]) < f.duplicate_rate
        order = np.argsort(np.concatenate([np.arange(len(v)), np.nonzero(dup)[0]]), kind="stable")
        out_ts = np.concatenate([out_ts, out_ts[dup]])[order]
        v = np.concatenate([v, v[dup]])[order]
    del all_values
    return out_ts, v


def _rollover_series(meter: Meter, quantity: str, ts: I64, v: F64, f: MeterFaults) -> F64:
    from collectors.profiles import get_profile
    from core.quantities import conversion_factor

    assert meter.modbus is not None
    profile = get_profile(meter.modbus.profile)
    try:
        fld = profile.field(quantity)
    except KeyError:
        return v
    spec = profile.spec(fld)
    if spec.type not in (RegisterType.UINT32, RegisterType.INT32, RegisterType.INT32_FLOAT32):
        return v
    factor = conversion_factor(fld.unit, QUANTITIES[quantity].unit)
    step = spec.scale * spec.ratio(meter.modbus.pt_ratio, meter.modbus.ct_ratio) * factor
    at = (
        f.rollover_at_ms if f.rollover_at_ms is not None else int(ts[0]) + DEFAULT_ROLLOVER_DELAY_MS
    )
    raw_at = float(np.interp(at, ts, v)) / step
    top = 2**32 if spec.type is RegisterType.UINT32 else 2**31
    raw = v / step + (top - raw_at)
    if top == 2**32:
        wrapped = np.mod(raw, 2.0**32)
    else:
        wrapped = np.mod(raw + 2.0**31, 2.0**32) - 2.0**31
    out: F64 = wrapped * step
    return out
