"""Weather for the site: a Lu'an-like hot-summer/cold-winter climate, seedable.

Lu'an (六安, Anhui, 31.7 N) sits in GB 50176's hot-summer/cold-winter zone: July averages
28.5 degC and is humid (RH ~ 81 %), January 2.9 degC; the plum rains (梅雨) of June-July
bring overcast weeks, winter cold waves a few degrees below normal for days at a time.

The model, from coarse to fine:

- **climatology**: monthly normals (mean temperature, diurnal range, relative humidity,
  the share of overcast days), interpolated to the day of the year;
- **day to day**: an AR(1) temperature anomaly (persistence 0.72 a day: cold waves and heat
  waves last several days) and an AR(1) cloudiness (overcast spells), drawn in sequence
  from 2000-01-01 so that any date's weather is the same whichever range is asked for;
- **within the day**: a diurnal cycle with the minimum near 05:30 and the maximum near
  14:30, its amplitude smaller under cloud; daily values are interpolated between local
  noons so nothing jumps at midnight; the dew point holds over the day, so relative humidity
  is high before dawn and low in the afternoon, as measured;
- **sun**: global horizontal irradiance from the solar elevation at the site's latitude and
  longitude (Haurwitz clear sky), dimmed by the day's cloudiness, flickering when broken;
- **noise**: small, keyed by the quarter hour (`simulators.rand`), interpolated between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from simulators import rand
from simulators.timegrid import DAY_MS, HOUR_MS, QUARTER_MS, utc_offsets

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Lu'an normals (approximate, 1991-2020 station climatology), January first.
MONTHLY_MEAN_C = (2.9, 5.6, 10.3, 16.4, 21.8, 25.6, 28.5, 27.7, 23.4, 17.8, 11.4, 5.1)
MONTHLY_RANGE_K = (8.4, 8.6, 9.2, 9.8, 9.6, 8.2, 7.4, 7.8, 8.2, 9.2, 9.6, 8.8)
MONTHLY_RH = (74.0, 73.0, 71.0, 71.0, 71.0, 77.0, 81.0, 82.0, 78.0, 73.0, 73.0, 71.0)
MONTHLY_OVERCAST = (0.45, 0.5, 0.5, 0.45, 0.45, 0.6, 0.5, 0.4, 0.4, 0.35, 0.38, 0.38)
# standard deviation of the daily temperature anomaly: cold waves in winter, steadier summers
MONTHLY_ANOMALY_SD = (2.9, 3.0, 2.8, 2.4, 2.0, 1.6, 1.4, 1.4, 1.7, 2.2, 2.7, 2.9)
TEMP_PERSISTENCE = 0.72
CLOUD_PERSISTENCE = 0.55

ORIGIN_DAY = 10_957  # 2000-01-01 as days since 1970-01-01
LAST_DAY = 47_847  # 2100-12-31
_MID_MONTH_DOY = np.array(
    [15.5, 45.0, 74.5, 105.0, 135.5, 166.0, 196.5, 227.5, 258.0, 288.5, 319.0, 349.5]
)


def climatology(table: tuple[float, ...], doy: F64) -> F64:
    """A monthly table interpolated (periodically) to fractional days of the year."""
    x = np.concatenate([_MID_MONTH_DOY - 365.0, _MID_MONTH_DOY, _MID_MONTH_DOY + 365.0])
    y = np.tile(np.asarray(table, dtype=np.float64), 3)
    out: F64 = np.interp(doy, x, y)
    return out


def saturation_kpa(temp_c: F64) -> F64:
    """Magnus formula over water."""
    out: F64 = 0.6112 * np.exp(17.62 * temp_c / (243.12 + temp_c))
    return out


def dew_point(temp_c: F64, rh: F64) -> F64:
    g = np.log(np.clip(rh, 1.0, 100.0) / 100.0) + 17.62 * temp_c / (243.12 + temp_c)
    out: F64 = 243.12 * g / (17.62 - g)
    return out


def wet_bulb(temp_c: F64, rh: F64) -> F64:
    """Stull (2011) wet-bulb temperature at sea-level pressure, degC."""
    rh = np.clip(rh, 5.0, 99.0)
    out: F64 = (
        temp_c * np.arctan(0.151977 * np.sqrt(rh + 8.313659))
        + np.arctan(temp_c + rh)
        - np.arctan(rh - 1.676331)
        + 0.00391838 * rh**1.5 * np.arctan(0.023101 * rh)
        - 4.686035
    )
    return out


def enthalpy(temp_c: F64, rh: F64, pressure_kpa: float = 100.9) -> F64:
    """Moist-air enthalpy, kJ per kg of dry air."""
    pv = saturation_kpa(temp_c) * np.clip(rh, 0.0, 100.0) / 100.0
    w = 0.622 * pv / (pressure_kpa - pv)
    out: F64 = 1.006 * temp_c + w * (2501.0 + 1.86 * temp_c)
    return out


@dataclass(frozen=True)
class DailyWeather:
    """Day-by-day values from 2000-01-01 to 2100-12-31 (local days)."""

    mean_c: F64
    range_k: F64
    dew_depression_k: F64
    cloud: F64
    """0 clear .. 1 overcast."""


@lru_cache(maxsize=8)
def daily_weather(seed: int) -> DailyWeather:
    days = np.arange(ORIGIN_DAY, LAST_DAY + 1, dtype=np.int64)
    d64 = days.astype("datetime64[D]")
    doy = (d64 - d64.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float64) + 0.5
    rng = np.random.default_rng([seed, 0x57EA7E])
    n = len(days)
    eps_t = rng.standard_normal(n)
    eps_c = rng.standard_normal(n)
    eps_d = rng.standard_normal(n)
    sd = climatology(MONTHLY_ANOMALY_SD, doy)
    innov_t = eps_t * sd * math.sqrt(1 - TEMP_PERSISTENCE**2)
    innov_c = eps_c * math.sqrt(1 - CLOUD_PERSISTENCE**2)
    anomaly = np.empty(n)
    latent = np.empty(n)
    a, c = 0.0, 0.0
    phi_t, phi_c = TEMP_PERSISTENCE, CLOUD_PERSISTENCE
    for i in range(n):  # AR(1): sequential by nature, 37 k days once per seed
        a = phi_t * a + innov_t[i]
        c = phi_c * c + innov_c[i]
        anomaly[i] = a
        latent[i] = c
    p_overcast = climatology(MONTHLY_OVERCAST, doy)
    # a latent Gaussian above the month's threshold means cloud; logistic keeps it graded
    threshold = _probit(1.0 - p_overcast)
    cloud = 1.0 / (1.0 + np.exp(-2.2 * (latent - threshold)))
    summer = np.clip((climatology(MONTHLY_MEAN_C, doy) - 12.0) / 14.0, 0.0, 1.0)
    mean_c = climatology(MONTHLY_MEAN_C, doy) + anomaly - (1.8 * summer) * (cloud - p_overcast)
    range_k = climatology(MONTHLY_RANGE_K, doy) * (1.2 - 0.7 * cloud)
    mean_rh = climatology(MONTHLY_RH, doy)
    base_dpd = climatology(MONTHLY_MEAN_C, doy) - dew_point(
        climatology(MONTHLY_MEAN_C, doy), mean_rh
    )
    # overcast days are damper; dry spells follow cold waves in winter
    dpd = base_dpd * (1.35 - 0.8 * cloud) * (1.0 - 0.04 * np.minimum(anomaly, 0.0)) + 0.7 * eps_d
    out = DailyWeather(mean_c, range_k, np.clip(dpd, 0.3, 20.0), cloud)
    for arr in (out.mean_c, out.range_k, out.dew_depression_k, out.cloud):
        arr.flags.writeable = False
    return out


def _probit(p: F64) -> F64:
    """Inverse normal CDF (Acklam's rational approximation is overkill here: logit match)."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    out: F64 = np.log(p / (1 - p)) / 1.7
    return out


def diurnal_shape(hour: F64) -> F64:
    """-1 at 05:30, +1 at 14:30: warming over 9 h, cooling over 15 h."""
    warming = (hour >= 5.5) & (hour < 14.5)
    since_max = np.mod(hour - 14.5, 24.0)
    out: F64 = np.where(
        warming, -np.cos(np.pi * (hour - 5.5) / 9.0), np.cos(np.pi * since_max / 15.0)
    )
    return out


def solar_elevation_sin(ts_ms: I64, latitude: float, longitude: float) -> F64:
    """Sine of the sun's elevation (negative at night)."""
    days = ts_ms / DAY_MS
    doy = np.mod(days - 10_957.0, 365.2425)  # days since 2000-01-01, wrapped to a year
    gamma = 2 * np.pi * doy / 365.2425
    decl = (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
    )
    eqtime_min = 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )
    utc_hours = np.mod(ts_ms, DAY_MS) / HOUR_MS
    solar_time = utc_hours + longitude / 15.0 + eqtime_min / 60.0
    hour_angle = np.radians(15.0 * (solar_time - 12.0))
    lat = math.radians(latitude)
    out: F64 = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return out


@dataclass(frozen=True)
class WeatherSample:
    temperature: F64
    """Outdoor dry-bulb, degC."""
    humidity: F64
    """Relative humidity, %."""
    irradiance: F64
    """Global horizontal irradiance, W/m2."""
    cloud: F64
    """The day's cloudiness 0..1 (interpolated)."""

    @property
    def wet_bulb(self) -> F64:
        return wet_bulb(self.temperature, self.humidity)

    @property
    def enthalpy(self) -> F64:
        return enthalpy(self.temperature, self.humidity)


class Weather:
    """The weather at any instants, for one site and seed."""

    def __init__(self, seed: int, latitude: float, longitude: float, tz: ZoneInfo) -> None:
        self.seed = seed
        self.latitude = latitude
        self.longitude = longitude
        self.tz = tz
        self._daily = daily_weather(seed)
        self._k_temp = rand.key(seed, "weather-temp")
        self._k_rh = rand.key(seed, "weather-rh")
        self._k_sun = rand.key(seed, "weather-sun")
        self._k_jitter = rand.key(seed, "weather-jitter")

    def _daily_at(self, local_days: F64) -> tuple[F64, F64, F64, F64]:
        """Daily values interpolated between local noons."""
        x = local_days - 0.5 - ORIGIN_DAY
        if len(x) and (x.min() < 0 or x.max() > LAST_DAY - ORIGIN_DAY - 1):
            raise ValueError("the weather model covers 2000-01-01 to 2100-12-31")
        i = np.floor(x).astype(np.int64)
        w = x - i
        d = self._daily

        def interp(arr: F64) -> F64:
            out: F64 = arr[i] * (1.0 - w) + arr[i + 1] * w
            return out

        return interp(d.mean_c), interp(d.range_k), interp(d.dew_depression_k), interp(d.cloud)

    def daily_mean(self, local_days: I64) -> F64:
        """The mean temperature of whole local days (for the plant's season logic)."""
        idx = local_days - ORIGIN_DAY
        out: F64 = self._daily.mean_c[np.clip(idx, 0, LAST_DAY - ORIGIN_DAY)]
        return out

    def at(self, ts_ms: I64) -> WeatherSample:
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        local = ts_ms + utc_offsets(ts_ms, self.tz)
        local_days = local / DAY_MS
        hour = np.mod(local, DAY_MS) / HOUR_MS
        mean_c, range_k, dpd, cloud = self._daily_at(local_days)
        q = ts_ms // QUARTER_MS
        frac = (ts_ms - q * QUARTER_MS) / QUARTER_MS

        def smooth(k: int, scale: float) -> F64:
            a = rand.noise(k, q)
            b = rand.noise(k, q + 1)
            out: F64 = (a * (1.0 - frac) + b * frac) * scale
            return out

        temp = mean_c + 0.5 * range_k * diurnal_shape(hour) + smooth(self._k_temp, 0.3)
        temp = temp + 0.03 * rand.noise(self._k_jitter, ts_ms // 60_000)
        dew = mean_c - dpd + smooth(self._k_rh, 0.25)
        rh = 100.0 * saturation_kpa(dew) / saturation_kpa(temp)
        rh = np.clip(rh, 12.0, 100.0)
        sin_e = solar_elevation_sin(ts_ms, self.latitude, self.longitude)
        up = sin_e > 0.01
        clear = np.where(up, 1098.0 * sin_e * np.exp(-0.057 / np.where(up, sin_e, 1.0)), 0.0)
        broken = cloud * (1.0 - cloud) * 4.0  # 1 when half cloudy
        flicker = 1.0 + 0.2 * broken * smooth(self._k_sun, 1.0)
        # 0.85: the haze of the Yangtze-Huai plain even on clear days
        ghi = np.clip(0.85 * clear * (1.0 - 0.8 * cloud**1.2) * flicker, 0.0, 1100.0)
        return WeatherSample(temp, rh, ghi, cloud)
