"""The site, its calendar, buildings and tenants, and the kinds of meters and end uses."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from core.calendar import DayType, check_country
from core.config.base import EntityId, FieldError, _Model


class MeterKind(StrEnum):
    ELECTRICITY = "electricity"
    WATER = "water"
    GAS = "gas"
    THERMAL = "thermal"
    WEATHER = "weather"


class EndUse(StrEnum):
    """What a meter measures, as the simulators and the savings core need to know."""

    INCOMER = "incomer"  # a transformer incomer: the sum of what it feeds, plus losses
    MIXED = "mixed"  # a department's or area's sub-meter: lighting + plugs + IT
    LIGHTING = "lighting"
    PLUG = "plug"
    IT = "it"
    LIFT = "lift"
    CHILLER = "chiller"
    CHW_PUMP = "chw_pump"
    CW_PUMP = "cw_pump"
    COOLING_TOWER = "cooling_tower"
    AHU = "ahu"
    HEATING = "heating"
    COOLING_DELIVERED = "cooling_delivered"  # a BTU meter on the chilled-water header
    COIL_ENERGY = "coil_energy"  # an energy valve on an AHU coil
    DOMESTIC_WATER = "domestic_water"
    MAKEUP_WATER = "makeup_water"  # cooling-tower make-up
    WATER_MAIN = "water_main"
    WEATHER = "weather"


class SiteInfo(_Model):
    """The site itself: `[site]`."""

    id: EntityId
    """Short ASCII id; tags every stored point."""
    name: str = Field(min_length=1)
    """Display name (Chinese first)."""
    name_en: str = ""
    """English display name."""
    timezone: str = "Asia/Shanghai"
    """IANA time zone: day and month buckets, office hours and the calendar follow it."""
    latitude: float = Field(ge=-90, le=90)
    """Degrees north."""
    longitude: float = Field(ge=-180, le=180)
    """Degrees east."""
    climate: str = ""
    """Free text, e.g. the GB 50176 climate zone."""
    commissioned: date | None = None
    """Date the monitoring went into service: device timestamps before it (local midnight)
    are refused. Empty: `[mqtt] earliest_timestamp` is the only floor."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DayOverride(_Model):
    """One date whose day type the site decides: `[[calendar.overrides]]`."""

    date: date
    """The local date."""
    day_type: DayType
    """`workday`, `weekend`, `holiday` or `makeup_workday`."""
    note: str = ""
    """Why (kept for the auditor)."""


class CalendarConfig(_Model):
    """The workday calendar: `[calendar]`."""

    source: Literal["china", "none", "holidays"] = "china"
    """Where statutory holidays come from: `china` (the State Council's yearly notice with its
    make-up workdays, 调休; only for a site in a mainland China time zone), `none` (Monday to
    Friday are workdays, nothing else), or `holidays` (the `holidays` package's calendar of
    `country`)."""
    country: str | None = None
    """`holidays`: ISO 3166-1 alpha-2 country code, e.g. `DE`."""
    subdivision: str | None = None
    """`holidays`: the country's subdivision code (state, province), e.g. `BY`; optional."""
    overrides: tuple[DayOverride, ...] = ()
    """Dates that differ from the national calendar (closures, years not yet published)."""

    @model_validator(mode="after")
    def _country_for_holidays(self) -> CalendarConfig:
        if self.source == "holidays":
            if not self.country:
                raise FieldError("country", "source = 'holidays' needs a country code, e.g. 'DE'")
            try:
                check_country(self.country, self.subdivision)
            except ValueError as exc:
                key = "subdivision" if "subdivision" in str(exc) else "country"
                raise FieldError(key, str(exc)) from None
        elif self.country is not None or self.subdivision is not None:
            key = "country" if self.country is not None else "subdivision"
            raise FieldError(key, f"only used with source = 'holidays' (source is {self.source!r})")
        return self


class Building(_Model):
    """A building of the site: `[[buildings]]`."""

    id: EntityId
    """ASCII id."""
    name: str = Field(min_length=1)
    """Display name."""
    name_en: str = ""
    """English display name."""
    floor_area_m2: float = Field(gt=0)
    """Gross floor area, m²: the denominator of energy intensity."""
    floors: int = Field(default=1, ge=1)
    """Storeys above ground."""


class Tenant(_Model):
    """A department (or a common area) occupying part of a building: `[[tenants]]`."""

    id: EntityId
    """ASCII id."""
    name: str = Field(min_length=1)
    """Display name."""
    name_en: str = ""
    """English display name."""
    building: EntityId
    """The building it occupies."""
    floor_area_m2: float = Field(gt=0)
    """Floor area it occupies, m² (cost allocation, simulated loads)."""
    staff: int = Field(default=0, ge=0)
    """Head count."""
    kind: Literal["department", "common"] = "department"
    """`department`, or `common` for lobbies, canteens, server rooms."""
