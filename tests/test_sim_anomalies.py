"""The simulators' anomalies with ground truth: configured in the site file and by `--fault`,
played in the physics (a leak, a chiller left on, a base-load step, a demand peak) and in
what meters report (silent, counter reset, jump), the same live and in a history, listed by
`--truth`, and drawn at random by seed for the detection benchmark."""

from __future__ import annotations

import itertools
import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pytest

from core.config import Anomaly, parse_site
from core.errors import ConfigError
from simulators.anomalies import RULES, truth_table
from simulators.anomaly_draw import GAP, draw_anomalies
from simulators.faults import FaultInjector, FaultPlan
from simulators.history import History, generate_history
from simulators.model import SiteModel
from simulators.site import SimulatedSite
from tests.sim_helpers import SITE_FILE, site

T = datetime(2025, 7, 7, 16, tzinfo=UTC)  # 2025-07-08 00:00 in Lu'an, a Tuesday
HOUR_MS = 3_600_000


def _ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def anomaly(kind: str, meter: str, start: datetime, end: datetime | None = None,
            **kw: Any) -> Anomaly:  # fmt: skip
    return Anomaly.model_validate({"kind": kind, "meter": meter, "start": start, "end": end, **kw})


def series(h: History, meter: str, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    r = h.readings
    sel = (r.meter_id == meter) & (r.quantity == quantity)
    return r.ts_ms[sel], r.value[sel]


def histories(anomalies: list[Anomaly], meters: list[str], days: float = 1, *,
              start: datetime = T) -> tuple[History, History]:  # fmt: skip
    """The same span without and with the anomalies."""
    end = start + timedelta(days=days)
    plan = FaultPlan(anomalies=tuple(anomalies))
    kw: dict[str, Any] = {"interval": "15m", "meters": meters}
    clean = generate_history(site(), start, end, model=SiteModel(site(), 0), **kw)
    faulty = generate_history(
        site(), start, end, model=SiteModel(site(), 0, plan.anomalies), faults=plan, **kw
    )
    return clean, faulty


def test_a_leak_flows_night_and_day_through_its_meter_and_the_ones_above() -> None:
    leak = anomaly("leak", "W-M-HI", T + timedelta(hours=2), T + timedelta(hours=20), flow_m3h=0.8)
    clean, faulty = histories([leak], ["W-M-HI", "W-MAIN", "W-EAST"])
    for meter in ("W-M-HI", "W-MAIN"):  # its own and its parent: 18 h x 0.8 m³/h more
        _, before = series(clean, meter, "volume")
        _, after = series(faulty, meter, "volume")
        extra = (after - before)[-1] - (after - before)[0]
        assert extra == pytest.approx(18 * 0.8, rel=1e-6), meter
        ts = series(faulty, meter, "volume")[0]
        per_quarter = np.diff(after - before)
        inside = (ts[1:] > leak.start_ms) & (ts[1:] <= leak.end_ms)  # type: ignore[operator]
        assert np.allclose(per_quarter[inside], 0.8 / 4), meter  # constant, night and day
        assert np.allclose(per_quarter[~inside], 0.0), meter
        ts, flow = series(faulty, meter, "flow")  # what the meter shows now (with its noise)
        _, flow0 = series(clean, meter, "flow")
        inside = (ts >= leak.start_ms) & (ts < leak.end_ms)  # type: ignore[operator]
        assert np.mean(flow[inside] - flow0[inside]) == pytest.approx(0.8, rel=0.25), meter
        assert np.array_equal(flow[ts < leak.start_ms], flow0[ts < leak.start_ms])
    np.testing.assert_array_equal(series(clean, "W-EAST", "volume")[1],
                                  series(faulty, "W-EAST", "volume")[1])  # fmt: skip


def test_a_demand_peak_holds_the_incomer_near_its_transformer_rating_for_an_hour() -> None:
    start = T + timedelta(hours=10)  # 10:00 local on a working day
    peak = anomaly("demand_peak", "E-TR2", start)
    assert peak.end_ms == peak.start_ms + HOUR_MS
    clean, faulty = histories([peak], ["E-TR2"])
    ts, power = series(faulty, "E-TR2", "power")
    _, power0 = series(clean, "E-TR2", "power")
    inside = (ts >= peak.start_ms) & (ts < peak.start_ms + HOUR_MS)
    rated = site().alarms.rules.transformer_load.rated_kva["E-TR2"]
    assert np.allclose(power[inside], 0.97 * rated, rtol=0.03)  # the default share
    assert (power0[inside] < 0.8 * rated).all()
    assert np.array_equal(power[~inside], power0[~inside])


def test_a_base_load_step_adds_half_the_night_load_from_its_start() -> None:
    step = anomaly("base_load_step", "E-D01", T + timedelta(days=1))
    clean, faulty = histories([step], ["E-D01"], days=2)
    ts, energy = series(faulty, "E-D01", "energy_import")
    _, energy0 = series(clean, "E-D01", "energy_import")
    rise = np.diff(energy - energy0) * 4  # kW more in each quarter hour
    after = ts[1:] > step.start_ms
    assert np.allclose(rise[~after], 0.0)
    assert np.allclose(rise[after], rise[after][0])  # a constant load from its start
    _, power0 = series(clean, "E-D01", "power")
    night = power0[(ts >= _ms(T + timedelta(hours=1))) & (ts < _ms(T + timedelta(hours=5)))]
    assert rise[after][0] == pytest.approx(0.5 * night.mean(), rel=0.25)


def test_a_chiller_left_on_over_a_weekend_runs_with_no_demand() -> None:
    friday = datetime(2025, 7, 11, 11, tzinfo=UTC)  # 19:00 local
    monday = datetime(2025, 7, 13, 23, tzinfo=UTC)  # 07:00 local
    on = anomaly("plant_on", "E-CH1", friday, monday)
    clean, faulty = histories([on], ["E-CH1"], days=4, start=datetime(2025, 7, 10, 16, tzinfo=UTC))
    ts, power = series(faulty, "E-CH1", "power")
    _, power0 = series(clean, "E-CH1", "power")
    inside = (ts >= on.start_ms) & (ts < on.end_ms)  # type: ignore[operator]
    assert (power[inside] >= 20).all()  # at least its minimum load, all weekend
    assert power0[inside].mean() < 0.5 * power[inside].mean()
    assert np.array_equal(power[~inside], power0[~inside])


def test_silence_resets_and_jumps_change_what_the_meter_reports() -> None:
    quiet = anomaly("silent", "E-D02", T + timedelta(hours=3), T + timedelta(hours=5))
    reset = anomaly("counter_reset", "E-D03", T + timedelta(hours=6))
    jump = anomaly("jump", "W-MAIN", T + timedelta(hours=6, minutes=7), amount=500)
    clean, faulty = histories([quiet, reset, jump], ["E-D02", "E-D03", "W-MAIN"])
    ts, _ = series(faulty, "E-D02", "power")
    assert len(ts) == 96 - 8
    assert not ((ts >= quiet.start_ms) & (ts < quiet.end_ms)).any()  # type: ignore[operator]
    ts, energy = series(faulty, "E-D03", "energy_import")
    _, energy0 = series(clean, "E-D03", "energy_import")
    after = ts >= reset.start_ms
    assert energy[~after].min() > 1000
    assert energy[after][0] < 5
    assert np.allclose(np.diff(energy[after]), np.diff(energy0[after]))  # counts on from 0
    ts, volume = series(faulty, "W-MAIN", "volume")
    _, volume0 = series(clean, "W-MAIN", "volume")
    assert np.allclose(volume - volume0, np.where(ts >= jump.start_ms, 500.0, 0.0))


def test_live_values_are_the_historys_and_the_servers_go_silent() -> None:
    leak = anomaly("leak", "W-MAIN", T, T + timedelta(hours=6), flow_m3h=2.0)
    quiet = anomaly("silent", "E-D02", T, T + timedelta(hours=1))
    plan = FaultPlan(anomalies=(leak, quiet))
    _, faulty = histories([leak], ["W-MAIN"])
    live = SimulatedSite(site(), seed=0, anomalies=plan.anomalies)
    ts, volume = series(faulty, "W-MAIN", "volume")
    for t, v in zip(ts[:30:7].tolist(), volume[:30:7].tolist(), strict=True):
        assert live.values("W-MAIN", t)["volume"] == pytest.approx(v, rel=1e-9)
    injector = FaultInjector(plan, leak.start_ms)
    assert injector.offline("E-D02", quiet.start_ms + 60_000)
    assert injector.mqtt("E-D02", quiet.start_ms)[0] is False
    assert not injector.offline("E-D02", quiet.start_ms + HOUR_MS)


def _with_simulation(simulation: dict[str, Any]) -> dict[str, Any]:
    data = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    data["simulation"] = simulation
    return data


def test_anomalies_from_the_site_file_and_the_command_line() -> None:
    start = "2025-08-01T22:00:00+08:00"
    leak = {"kind": "leak", "meter": "W-MAIN", "start": start, "end": "2025-08-03T08:00:00+08:00"}
    configured = parse_site(_with_simulation({"anomalies": [leak]}))
    plan = FaultPlan.from_site(configured)
    assert [(a.kind, a.meter) for a in plan.anomalies] == [("leak", "W-MAIN")]
    assert not plan.empty
    cli = FaultPlan.parse([f"W-MAIN:leak,start={start},end=2025-08-03T08:00:00+08:00,flow_m3h=0.6",
                           f"E-TR1:demand_peak,start={start}"])  # fmt: skip
    assert cli.anomalies[0].flow_m3h == 0.6
    assert cli.anomalies[1].end_ms == cli.anomalies[1].start_ms + HOUR_MS
    assert plan.merged(cli).anomalies == (*plan.anomalies, *cli.anomalies)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"kind": "leak", "meter": "E-D01"}, "anomalies.0.meter.*water meter"),
        ({"kind": "leak", "meter": "W-NOPE"}, "no meter 'W-NOPE'"),
        ({"kind": "demand_peak", "meter": "E-D01"}, "needs an incomer"),
        ({"kind": "jump", "meter": "E-D01", "end": "2025-08-02T00:00:00+08:00"}, "instant"),
        ({"kind": "leak", "meter": "W-MAIN", "end": "2025-07-01T00:00:00+08:00"}, "after start"),
        ({"kind": "leak", "meter": "W-MAIN", "share": 0.5}, "takes flow_m3h"),
    ],
)
def test_an_anomaly_that_cannot_happen_is_refused(entry: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_site(
            _with_simulation({"anomalies": [{"start": "2025-08-01T00:00:00+08:00", **entry}]})
        )


def test_a_bad_anomaly_on_the_command_line_is_one_line() -> None:
    with pytest.raises(ConfigError, match="start: required"):
        FaultPlan.parse(["W-MAIN:leak"])
    with pytest.raises(ConfigError, match="name one anomaly"):
        FaultPlan.parse(["W-MAIN:leak,silent,start=2025-08-01T00:00:00+08:00"])
    plan = FaultPlan.parse(["E-D01:leak,start=2025-08-01T00:00:00+08:00"])
    with pytest.raises(ConfigError, match="water meter"):
        plan.check(site())


def test_the_truth_names_the_rule_the_category_and_the_meters_that_show_it() -> None:
    leak = anomaly("leak", "W-M-HI", T, T + timedelta(days=1))
    quiet = anomaly("silent", "E-D02", T, T + timedelta(hours=2))
    quiet_truth, leak_truth = truth_table(site(), [leak, quiet])  # by start, then meter
    assert (leak_truth.kind, leak_truth.category, leak_truth.rule) == (
        "leak", "consumption", "night_water_flow",
    )  # fmt: skip
    assert leak_truth.meters == ("W-M-HI", "W-MAIN")
    assert leak_truth.parameters == {"flow_m3h": 0.5}
    assert (quiet_truth.category, quiet_truth.rules, quiet_truth.meters) == (
        "data", ("meter_offline",), ("E-D02",),
    )  # fmt: skip
    assert truth_table(site(), [leak], start_ms=leak.end_ms + 1) == []  # type: ignore[operator]


def test_the_rules_named_by_the_truth_are_the_engines() -> None:
    from alarms.rules import REGISTRY

    assert {r for rules in RULES.values() for r in rules} <= set(REGISTRY)


def test_drawn_anomalies_are_reproducible_of_every_kind_and_apart() -> None:
    a, b = _ms(datetime(2025, 6, 30, 16, tzinfo=UTC)), _ms(datetime(2026, 6, 30, 16, tzinfo=UTC))
    drawn = draw_anomalies(site(), a, b, per_kind=8, seed=4)
    assert drawn == draw_anomalies(site(), a, b, per_kind=8, seed=4)
    assert drawn != draw_anomalies(site(), a, b, per_kind=8, seed=5)
    kinds = [x.kind for x in drawn]
    assert {k: kinds.count(k) for k in set(kinds)} == {k: 8 for k in RULES}
    by_meter: dict[str, list[Anomaly]] = {}
    for x in drawn:
        assert a <= x.start_ms
        assert (x.end_ms or x.start_ms) <= b
        by_meter.setdefault(x.meter, []).append(x)
    for items in by_meter.values():
        items.sort(key=lambda x: x.start_ms)
        for first, second in itertools.pairwise(items):
            assert (first.end_ms or first.start_ms) + 2 * GAP <= second.start_ms
    for x in drawn:
        if x.kind == "plant_on":  # from 19:00 before a day off to 07:00 after it
            assert x.start.astimezone(site().site.tz).hour == 19
            assert not site().work_calendar.is_working_day(
                (x.start + timedelta(days=1)).astimezone(site().site.tz).date()
            )


def test_history_truth_lists_the_anomalies(tmp_path: Any) -> None:
    from tests.test_sim_cli import history

    truth = tmp_path / "truth.csv"
    done = history(
        "--interval", "1h", "--out", str(tmp_path / "h.parquet"), "--truth", str(truth),
        "--fault", "W-MAIN:leak,start=2025-07-01T02:00:00+08:00,end=2025-07-01T09:00:00+08:00",
        "--fault", "E-TR1:demand_peak,start=2025-07-01T10:00:00+08:00",
    )  # fmt: skip
    assert "anomaly leak at W-MAIN from 2025-06-30T18:00:00+00:00" in done.stdout
    listed = pacsv.read_csv(tmp_path / "truth.anomalies.csv").to_pylist()
    assert [(r["kind"], r["meter"], r["rule"]) for r in listed] == [
        ("leak", "W-MAIN", "night_water_flow"),
        ("demand_peak", "E-TR1", "transformer_load"),
    ]
    assert listed[1]["end"] - listed[1]["start"] == timedelta(hours=1)
