"""Who is in the building: government office hours, from the site's work calendar.

Office hours of Anhui's government bodies: 08:30-12:00, and 14:30-17:30 from October to
April or 15:00-18:00 from May to September (summer hours). Staff arrive over the half hour
before; at lunch about half of them go out (canteen, home) and those who stay nap with
the lights off (午休); some stay for evening overtime, more in December, fewer on Fridays.
Weekends and statutory holidays are empty except for departments on duty; make-up
workdays (调休) are workdays.

Each department has its own habits (`roles.Habits`): arrival time, attendance, overtime,
weekend duty. The quarter-hour profile of a working day is computed once per department
and season; each day then scales it by that day's attendance and overtime, drawn from the
seed, keyed by (department, day).

Outputs per quarter hour and department: `presence` (share of staff in the building:
people, water, lifts, heat gains) and `activity` (share of desks at work: lights and
equipment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulators import rand
from simulators.roles import SiteSpec
from simulators.timegrid import HOLIDAY, MAKEUP, LocalTimes

F64 = npt.NDArray[np.float64]

QUARTERS_PER_DAY = 96
_H = (np.arange(QUARTERS_PER_DAY) + 0.5) / 4.0  # quarter midpoints, local hours

OVERTIME_BY_MONTH = (1.3, 0.8, 1.0, 1.0, 1.0, 1.0, 0.8, 0.8, 1.0, 1.0, 1.15, 1.6)
ATTENDANCE_BY_MONTH = (1.0, 0.96, 1.0, 1.0, 1.0, 1.0, 0.94, 0.93, 1.0, 0.98, 1.0, 1.0)
OVERTIME_BY_WEEKDAY = (1.25, 1.1, 1.0, 1.0, 0.6, 0.5, 0.5)


def _sig(x: npt.ArrayLike) -> F64:
    out: F64 = 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
    return out


def office_hours(summer: bool) -> tuple[float, float]:
    """(afternoon start, afternoon end), local hours."""
    return (15.0, 18.0) if summer else (14.5, 17.5)


@dataclass(frozen=True)
class Templates:
    """Working-day shapes per season (0 winter, 1 summer), quarter of day, department."""

    presence: F64
    activity: F64
    overtime: F64
    duty: F64
    """Weekend duty shape (same for all), by quarter of day."""
    lunch: F64
    """Share of the building at lunch (canteen rush), by season and quarter."""


def templates(spec: SiteSpec) -> Templates:
    h: npt.NDArray[Any] = _H[:, None]
    arrival: npt.NDArray[Any] = np.array([hb.arrival_h for hb in spec.habits])[None, :]
    leave = np.array([hb.leave_h for hb in spec.habits])[None, :]
    ot_h = np.array([hb.overtime_h for hb in spec.habits])[None, :]
    pres, act, ot, lunch_s = [], [], [], []
    for summer in (False, True):
        pm_start, pm_end = office_hours(summer)
        arr: npt.NDArray[Any] = _sig((h - 8.25 - arrival) / 0.12) * _sig((h - 6.0) / 0.2)
        lunch: npt.NDArray[Any] = _sig((h - 11.95) / 0.08) - _sig((h - pm_start + 0.1) / 0.1)
        gone: npt.NDArray[Any] = 1.0 - _sig((h - pm_end - 0.1 - leave) / 0.15)
        late = (h >= pm_end) & (h < 23.5)
        overtime = np.where(late, np.exp(-np.clip(h - pm_end - 0.25, 0.0, None) / ot_h), 0.0)
        pres.append(arr * gone * (1.0 - 0.5 * lunch))
        act.append(arr * gone * (1.0 - 0.8 * lunch))
        ot.append(overtime)
        lunch_s.append(lunch[:, 0])
    duty: npt.NDArray[Any] = _sig((_H - 9.0) / 0.2) * (1.0 - _sig((_H - 16.5) / 0.3))
    duty = duty * (1.0 - 0.5 * (_sig((_H - 12.0) / 0.1) - _sig((_H - 13.5) / 0.1)))
    return Templates(np.stack(pres), np.stack(act), np.stack(ot), duty, np.stack(lunch_s))


@dataclass(frozen=True)
class Occupancy:
    presence: F64
    """(n, tenants): share of the department's staff in the building."""
    activity: F64
    """(n, tenants): share of its desks at work (lights, equipment)."""
    people: F64
    """(n, buildings): people in each building."""
    building_presence: F64
    """(n, buildings): people / the building's head count."""
    meeting: F64
    """(n,): the conference halls' use, 0..1."""
    lunch: F64
    """(n,): 1 during the lunch break of a working day."""
    site_overtime: F64
    """(n,): share of the site's staff still in after hours."""


def occupancy(spec: SiteSpec, tpl: Templates, lt: LocalTimes) -> Occupancy:
    n = len(lt.day)
    nt = len(spec.tenants)
    qod = np.clip((lt.hour * 4).astype(np.int64), 0, QUARTERS_PER_DAY - 1)
    summer = ((lt.month >= 5) & (lt.month <= 9)).astype(np.int64)
    first = int(lt.day.min()) if n else 0
    days = np.arange(first, (int(lt.day.max()) + 1) if n else first, dtype=np.int64)
    row = lt.day - first
    keys = np.array(
        [rand.key(spec.seed, "tenant-day", t.id) for t in spec.tenants], dtype=np.uint64
    )
    # per (day, tenant) draws
    z_att = rand.noise(keys[None, :], days[:, None] * 4)
    z_ot = rand.noise(keys[None, :], days[:, None] * 4 + 1)
    u_duty = rand.uniform(keys[None, :], days[:, None] * 4 + 2)
    u_frac = rand.uniform(keys[None, :], days[:, None] * 4 + 3)
    site_key = rand.key(spec.seed, "site-day")
    z_site = rand.noise(site_key, days * 8)
    u_meet_am = rand.uniform(site_key, days * 8 + 1)
    u_meet_pm = rand.uniform(site_key, days * 8 + 2)
    meet_size = 0.6 + 0.4 * rand.uniform(site_key, days * 8 + 3)

    hb = spec.habits
    attendance = np.array([h.attendance for h in hb])[None, :]
    overtime = np.array([h.overtime for h in hb])[None, :]
    duty_p = np.array([h.weekend_duty for h in hb])[None, :]
    staff = np.array([float(t.staff) for t in spec.tenants])

    # everything that varies by day is computed per (day, department), then spread over the
    # day's quarters once; few full-size temporaries (fresh large arrays cost page faults)
    first_row = np.searchsorted(lt.day, days)
    d_month = lt.month[first_row]
    d_type = lt.day_type[first_row]
    d_makeup = d_type == MAKEUP
    d_holiday = d_type == HOLIDAY
    month_att = np.asarray(ATTENDANCE_BY_MONTH)[d_month - 1]
    month_ot = (
        np.asarray(OVERTIME_BY_MONTH)[d_month - 1]
        * np.asarray(OVERTIME_BY_WEEKDAY)[lt.weekday[first_row]]
    )
    working = lt.working

    att_day = attendance * (1.0 + 0.045 * z_att + 0.02 * z_site[:, None])
    att_day = np.clip(att_day * (month_att * np.where(d_makeup, 0.95, 1.0))[:, None], 0.0, 0.99)
    ot_day = overtime * np.exp(0.55 * z_ot - 0.15) * month_ot[:, None]
    # some weekends the whole administration works (inspections, campaigns, deadlines)
    busy_weekend = rand.uniform(site_key, days * 8 + 4) < 0.12
    duty_scale = np.where(d_holiday, 0.35, np.where(busy_weekend, 4.0, 1.0))
    duty_on = u_duty < duty_p * duty_scale[:, None]
    duty_frac = np.where(duty_on, 0.08 + 0.22 * u_frac, 0.0)

    att = att_day[row]
    o_work = tpl.overtime[summer, qod]
    o_work *= ot_day[row]
    presence = tpl.presence[summer, qod]
    np.maximum(presence, o_work, out=presence)
    presence *= att
    o_work *= 0.9
    activity = tpl.activity[summer, qod]
    np.maximum(activity, o_work, out=activity)
    activity *= att
    off = np.nonzero(~working)[0]
    if len(off):
        pres_off = duty_frac[row[off]] * tpl.duty[qod[off]][:, None]
        presence[off] = pres_off
        activity[off] = 0.9 * pres_off

    members = np.zeros((nt, len(spec.buildings)))
    b_of = {b: i for i, b in enumerate(spec.buildings)}
    for i, t in enumerate(spec.tenants):
        members[i, b_of[t.building]] = staff[i]
    people = presence @ members
    b_staff = np.asarray(spec.building_staff)
    b_pres = people / np.maximum(b_staff, 1.0)[None, :]

    h = lt.hour
    am = (h >= 8.75) & (h < 11.75)
    pm_start = np.where(summer == 1, 15.25, 14.75)
    pm = (h >= pm_start) & (h < pm_start + 2.5)
    p_am = np.where(working, 0.55, 0.04)
    p_pm = np.where(working, 0.35, 0.02)
    meeting = (
        np.where(am & (u_meet_am[row] < p_am), 1.0, 0.0)
        + np.where(pm & (u_meet_pm[row] < p_pm), 1.0, 0.0)
    ) * meet_size[row]
    lunch = np.where(working, tpl.lunch[summer, qod], 0.0)
    total_staff = max(1.0, float(staff.sum()))
    after = np.where(working & (h >= pm_start + 3.0), 1.0, 0.0)
    site_ot = after * (presence @ staff) / total_staff
    return Occupancy(presence, activity, people, b_pres, meeting, lunch, site_ot)
