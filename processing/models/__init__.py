"""Baseline models: plain objects with `fit(data) -> self`, `predict(data)`, `to_dict()` and
`from_dict()`. A fitted model's dict is JSON-safe and predicts exactly what the model did.

- `DailyChangePointModel`: 1P, 2P, 3PC, 3PH, 4P, 5P in °C, by day type (`models.daily`);
- `HourlyTOWTModel`: time-of-week-and-temperature with occupancy detection (`models.hourly`);
- `BillingModel`: use per day against degree days for monthly bills (`models.billing`).

`model_from_dict()` restores any of them from its dict.
"""

from __future__ import annotations

from typing import Any

from processing.models.billing import BillingModel
from processing.models.daily import DailyChangePointModel, DailySettings
from processing.models.hourly import HourlySettings, HourlyTOWTModel

BaselineModel = DailyChangePointModel | HourlyTOWTModel | BillingModel

__all__ = [
    "BaselineModel",
    "BillingModel",
    "DailyChangePointModel",
    "DailySettings",
    "HourlySettings",
    "HourlyTOWTModel",
    "model_from_dict",
]


def model_from_dict(data: dict[str, Any]) -> BaselineModel:
    """The fitted model a `to_dict()` describes, whichever kind it is."""
    kind = data.get("model")
    if kind == DailyChangePointModel.KIND:
        return DailyChangePointModel.from_dict(data)
    if kind == HourlyTOWTModel.KIND:
        return HourlyTOWTModel.from_dict(data)
    if kind == BillingModel.KIND:
        return BillingModel.from_dict(data)
    raise ValueError(f"unknown model kind {kind!r}")
