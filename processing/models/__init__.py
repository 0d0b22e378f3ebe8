"""Baseline models: plain objects with `fit(data) -> self`, `predict(data)`, `to_dict()` and
`from_dict()`. A fitted model's dict is JSON-safe and predicts exactly what the model did.

- `DailyChangePointModel`: 1P, 2P, 3PC, 3PH, 4P, 5P in °C, by day type (`models.daily`);
- `HourlyTOWTModel`: time-of-week-and-temperature with occupancy detection (`models.hourly`);
- `BillingModel`: use per day against degree days for monthly bills (`models.billing`).

`REGISTRY` is the one list of them that the site file (`[contracts.baseline] model`, whose
names `core.config.MODEL_NAMES` declares), the command line, the JSON loader and the API
read: one `ModelEntry` per model a contract can choose, and `model_from_dict()` restores any
fitted model from its JSON by its `KIND`. Bills enter a contract as a boundary meter read
once a month (a counter reading at each month's first local midnight): calendar months are
its billing periods, and the days between readings are the readings spread evenly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import MODEL_NAMES, ModelName
from processing.models.billing import BillingModel
from processing.models.daily import DailyChangePointModel, DailySettings
from processing.models.hourly import HourlySettings, HourlyTOWTModel
from processing.stats import Granularity

BaselineModel = DailyChangePointModel | HourlyTOWTModel | BillingModel


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One baseline model a contract can choose."""

    name: ModelName
    """The name in the site file and on the command line."""
    cls: type[DailyChangePointModel] | type[HourlyTOWTModel] | type[BillingModel]
    kind: str
    """The `model` tag of its JSON."""
    granularity: Granularity
    hourly_inputs: bool
    """Its statements need the reporting period's hourly rows (it predicts hours)."""
    description: str
    max_gap_days: int | None = None
    """Counter samples this far apart are its data, not a gap (monthly readings)."""


REGISTRY: dict[ModelName, ModelEntry] = {
    "daily": ModelEntry(
        "daily",
        DailyChangePointModel,
        DailyChangePointModel.KIND,
        DailyChangePointModel.GRANULARITY,
        False,
        "change-point models (1P..5P, °C) by day type, on daily use",
    ),
    "hourly": ModelEntry(
        "hourly",
        HourlyTOWTModel,
        HourlyTOWTModel.KIND,
        HourlyTOWTModel.GRANULARITY,
        True,
        "time-of-week-and-temperature with occupancy detection, on hourly use",
    ),
    "billing": ModelEntry(
        "billing",
        BillingModel,
        BillingModel.KIND,
        BillingModel.GRANULARITY,
        False,
        "degree days and working-day share per billing period, on monthly readings",
        max_gap_days=45,
    ),
}
if tuple(REGISTRY) != MODEL_NAMES:  # the site file's vocabulary and this table are one list
    raise ImportError(f"model registry {tuple(REGISTRY)} != config's {MODEL_NAMES}")

KINDS = {entry.kind: entry.cls for entry in REGISTRY.values()}
"""Every fitted model's JSON tag and its class (what `model_from_dict` restores)."""

__all__ = [
    "KINDS",
    "MODEL_NAMES",
    "REGISTRY",
    "BaselineModel",
    "BillingModel",
    "DailyChangePointModel",
    "DailySettings",
    "HourlySettings",
    "HourlyTOWTModel",
    "ModelEntry",
    "entry_of",
    "model_from_dict",
]


def entry_of(model: BaselineModel) -> ModelEntry:
    """The registry entry of a fitted model."""
    return next(e for e in REGISTRY.values() if e.kind == model.KIND)


def model_from_dict(data: dict[str, Any]) -> BaselineModel:
    """The fitted model a `to_dict()` describes, whichever kind it is."""
    cls = KINDS.get(str(data.get("model")))
    if cls is None:
        raise ValueError(f"unknown model kind {data.get('model')!r} (known: {', '.join(KINDS)})")
    return cls.from_dict(data)
