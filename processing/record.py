"""A statement and its record: everything needed to recompute it, in one JSON document.

`Statement.to_dict()` is the record the statement store keeps, the API serves
(`/contracts/{id}/statements/{month}`) and `epcmon savings export` writes: the figures
(`numbers`), the findings, the fitted model's JSON, the contract as configured (periods,
tariff, adjustments, guarantee), the reporting-period inputs (per day: temperature, day
type, actual, whether interpolated, the actual consumption's tariff-period shares; the
baseline period's hourly profile for a daily model; per hour for an hourly model), the
calendar the day types came from and the software version. `contract.recompute()` turns it
back into a statement from the document alone, and `first_difference()` says where two
records' figures part.

Status: a statement whose baseline (or its own data) fails a sufficiency or fit criterion
carries an `error` finding, and its status says so (`unreliable: <finding>`) instead of a
bare `final` or `provisional`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from core.config import Contract, UtilityName
from processing import economics
from processing.frames import DAY_TYPES, BoolArray, DailyData, FloatArray, HourlyData
from processing.pricing import DayProfile
from processing.savings import PeriodSavings
from processing.sufficiency import Finding, Severity


def _version() -> str:
    try:
        return metadata.version("epcmon")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


METHOD = "epcmon-processing/2"
"""The statement method's version: 2 prices savings by the hour and carries the guarantee on
both bases; records of version 1 still recompute (their pricing) and verify."""
SOFTWARE = f"{METHOD} (epcmon {_version()})"
"""The method's version and the package's, written into every record."""

PRICING_HOURLY = "by the hour: baseline minus actual in each tariff period"
PRICING_LEGACY = "by the day's consumption shares (records before epcmon-processing/2)"
PRICING_BILLING = "monthly readings: spread evenly over the hours, by the hours in each period"


def _floats(a: FloatArray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in a.tolist()]


def _unfloats(values: list[float | None]) -> FloatArray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class StatementInputs:
    """The reporting-period data a statement was computed from (all it needs to recompute)."""

    daily: DailyData
    estimated: BoolArray
    shares: FloatArray
    """(days, 4) sharp/peak/flat/valley shares of each day's metered consumption (a day
    without every hour known: the baseline's shares)."""
    hourly: HourlyData | None  # only for an hourly model
    typical_temperature: FloatArray | None = None  # 365 typical-year means, for normalised savings
    profile: DayProfile | None = None
    """A daily model's baseline-period hourly shape (None: an hourly model, or a legacy record)."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "daily": {
                "day": [str(x) for x in self.daily.day],
                "temperature": _floats(self.daily.temperature),
                "day_type": [DAY_TYPES[c].value for c in self.daily.day_type],
                "actual": _floats(self.daily.energy),
                "estimated": [bool(x) for x in self.estimated],
            },
            "shares": [_floats(row) for row in self.shares],
            "hourly": None,
            "typical_temperature": None
            if self.typical_temperature is None
            else _floats(self.typical_temperature),
        }
        if self.profile is not None:
            d["profile"] = self.profile.to_dict()
        if self.hourly is not None:
            h = self.hourly
            d["hourly"] = {
                "ts_ms": [int(x) for x in h.ts_ms],
                "hour_of_week": [int(x) for x in h.hour_of_week],
                "day": [str(x) for x in h.day],
                "day_type": [int(x) for x in h.day_type],
                "temperature": _floats(h.temperature),
                "actual": _floats(h.energy),
            }
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatementInputs:
        codes = {t.value: i for i, t in enumerate(DAY_TYPES)}
        dd = data["daily"]
        daily = DailyData(
            np.array(dd["day"], dtype="datetime64[D]"),
            _unfloats(dd["temperature"]),
            np.array([codes[t] for t in dd["day_type"]], dtype=np.int64),
            _unfloats(dd["actual"]),
        )
        hourly = None
        if data["hourly"] is not None:
            hd = data["hourly"]
            hourly = HourlyData(
                np.array(hd["ts_ms"], dtype=np.int64),
                np.array(hd["hour_of_week"], dtype=np.int64),
                np.array(hd["day"], dtype="datetime64[D]"),
                np.array(hd["day_type"], dtype=np.int64),
                _unfloats(hd["temperature"]),
                _unfloats(hd["actual"]),
            )
        typical = data.get("typical_temperature")
        profile = data.get("profile")
        return cls(
            daily,
            np.array(dd["estimated"], dtype=bool),
            np.array([_unfloats(row) for row in data["shares"]], dtype=np.float64).reshape(-1, 4),
            hourly,
            None if typical is None else _unfloats(typical),
            None if profile is None else DayProfile.from_dict(profile),
        )

    def digest(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


PERIOD_KEYS = ("month", "year_to_date", "cumulative")


@dataclass(frozen=True, slots=True)
class Statement:
    """One month's verified savings of one boundary of a contract, with its provenance."""

    contract_id: str
    utility: UtilityName
    unit: str
    month: str
    month_savings: PeriodSavings
    year_to_date: PeriodSavings
    cumulative: PeriodSavings
    money: dict[str, economics.Money]  # "month", "year_to_date", "cumulative"
    carbon_t: dict[str, float]
    guarantee: economics.GuaranteeStatus | None
    normalised: float | None
    findings: tuple[Finding, ...]
    model: dict[str, Any]
    contract: dict[str, Any]
    inputs: StatementInputs
    inputs_digest: str
    created_at: str
    software: str = SOFTWARE
    energy_kwh: dict[str, float] = field(default_factory=dict)
    """The avoided energy's kWh equivalent per period, for a boundary not counted in kWh (gas:
    its calorific value; heat in GJ)."""
    pricing: str = PRICING_HOURLY
    calendar: str = ""
    """Where the day types came from (the site's calendar source), for the reader."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def periods(self) -> tuple[tuple[str, PeriodSavings], ...]:
        return (
            ("month", self.month_savings),
            ("year_to_date", self.year_to_date),
            ("cumulative", self.cumulative),
        )

    def unreliable(self) -> Finding | None:
        """The first `error` finding: the baseline or the data fails a criterion of the method."""
        return next((f for f in self.findings if f.severity is Severity.ERROR), None)

    def status(self, final: bool) -> str:
        """`final` or `provisional`, or `unreliable: <finding>` when a criterion failed."""
        return status_of(self.findings, final)

    def numbers(self) -> dict[str, Any]:
        """Every figure of the statement (what `recompute` must reproduce)."""
        out: dict[str, Any] = {}
        for key, p in self.periods:
            out[key] = p.to_dict()
            out[key]["carbon_t"] = self.carbon_t.get(key, 0.0)
            if key in self.money:
                out[key]["money"] = self.money[key].to_dict()
            if key in self.energy_kwh:
                out[key]["energy_kwh"] = self.energy_kwh[key]
        out["guarantee"] = None if self.guarantee is None else self.guarantee.to_dict()
        out["normalised"] = self.normalised
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "utility": self.utility,
            "unit": self.unit,
            "month": self.month,
            "numbers": self.numbers(),
            "findings": [f.to_dict() for f in self.findings],
            "model": self.model,
            "contract": self.contract,
            "inputs": self.inputs.to_dict(),
            "inputs_digest": self.inputs_digest,
            "created_at": self.created_at,
            "software": self.software,
            "pricing": self.pricing,
            "calendar": self.calendar,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Statement:
        nums = data["numbers"]
        money = {
            k: economics.Money.from_dict(nums[k]["money"])
            for k in PERIOD_KEYS
            if nums[k].get("money") is not None
        }
        return cls(
            contract_id=data["contract_id"],
            utility=data["utility"],
            unit=data["unit"],
            month=data["month"],
            month_savings=_period(nums["month"]),
            year_to_date=_period(nums["year_to_date"]),
            cumulative=_period(nums["cumulative"]),
            money=money,
            carbon_t={k: nums[k]["carbon_t"] for k in PERIOD_KEYS},
            guarantee=None
            if nums["guarantee"] is None
            else economics.GuaranteeStatus.from_dict(nums["guarantee"]),
            normalised=nums["normalised"],
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            model=data["model"],
            contract=data["contract"],
            inputs=StatementInputs.from_dict(data["inputs"]),
            inputs_digest=data["inputs_digest"],
            created_at=data["created_at"],
            software=data["software"],
            energy_kwh={k: nums[k]["energy_kwh"] for k in PERIOD_KEYS if "energy_kwh" in nums[k]},
            pricing=data.get("pricing", PRICING_LEGACY),
            calendar=data.get("calendar", ""),
        )


def contract_of(record: dict[str, Any]) -> Contract:
    """The contract a record was computed under, validated; a record written before the
    utility table (`water_meters`, the tariff's `water_price_cny_per_m3`) is read in the
    current shape, so that it still recomputes."""
    data = dict(record["contract"])
    if "water_meters" in data or "water_price_cny_per_m3" in (data.get("tariff") or {}):
        meters = data.pop("water_meters", None) or []
        tariff = dict(data["tariff"]) if data.get("tariff") else None
        price = None if tariff is None else tariff.pop("water_price_cny_per_m3", None)
        data["tariff"] = tariff
        if meters and "utilities" not in data:
            data["utilities"] = {"water": {"meters": meters, "price_cny_per_m3": price}}
    return Contract.model_validate(data)


def status_of(findings: Sequence[Finding | dict[str, Any]], final: bool) -> str:
    """A statement's status from its findings (objects, or their dicts in a record)."""
    for f in findings:
        finding = f if isinstance(f, Finding) else Finding.from_dict(f)
        if finding.severity is Severity.ERROR:
            return f"unreliable: {finding.code}: {finding.message}"
    return "final" if final else "provisional"


def _period(d: dict[str, Any]) -> PeriodSavings:
    return PeriodSavings.from_dict(
        {k: _nan(v) for k, v in d.items() if k not in ("carbon_t", "money", "energy_kwh")}
    )


def _nan(value: Any) -> Any:
    """A JSON null where a number was (a non-finite figure, written by a strict serialiser)."""
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    return math.nan if value is None else value


def _plain(value: Any) -> Any:
    """Non-finite floats as None, so that a stored record (which keeps NaN) and one that went
    through a strict JSON serialiser (which writes null) compare equal."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def first_difference(
    expected: Any, actual: Any, path: str = "", *, rel: float = 1e-9, new_keys: bool = False
) -> str | None:
    """Where two JSON values first differ ('numbers.month.money.total_cny: 1234.5 in the
    file, 1234.6 recomputed'), or None. Numbers agree when within `rel` of each other (a
    last-bit difference between machines is not a difference a cent can show). `new_keys`:
    figures the file does not have (a record older than them) are not differences."""
    a, b = _plain(expected), _plain(actual)
    where = path or "(record)"
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a and new_keys:
                continue
            if key not in a or key not in b:
                return f"{path}.{key}".lstrip(".") + (
                    ": missing from the file" if key not in a else ": not recomputed"
                )
            diff = first_difference(a[key], b[key], f"{path}.{key}", rel=rel, new_keys=new_keys)
            if diff is not None:
                return diff.lstrip(".")
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            diff = first_difference(x, y, f"{path}[{i}]", rel=rel, new_keys=new_keys)
            if diff is not None:
                return diff
        return None
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if a == b or abs(a - b) <= rel * max(1.0, abs(a), abs(b)):
            return None
        return f"{where}: {a!r} in the file, {b!r} recomputed"
    if a != b:
        return f"{where}: {a!r} in the file, {b!r} recomputed"
    return None


__all__ = [
    "METHOD",
    "PRICING_BILLING",
    "PRICING_HOURLY",
    "PRICING_LEGACY",
    "SOFTWARE",
    "Statement",
    "StatementInputs",
    "contract_of",
    "first_difference",
    "status_of",
]
