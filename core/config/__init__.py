"""The site configuration: one TOML file, validated once into frozen models.

Every default is declared once, beside its field. `load_site()` is the only way in: it
parses the file, validates it, checks the cross-references (meter -> gateway, tenant ->
building, ...) and raises one `ConfigError` naming the file, the entity and the key.
Nothing downstream ever sees a dict or a half-valid site.

The package, one job a module:

| module | holds |
|---|---|
| `base` | the frozen base model, `EntityId` |
| `places` | the site, its calendar, buildings, tenants; meter kinds and end uses |
| `meters` | meters, Modbus gateways and sources |
| `mqtt`, `topics` | the broker, payload formats, MQTT sources; topic patterns and matching |
| `storage` | DuckDB, InfluxDB, the spool |
| `contracts` | energy-performance contracts and their tariffs, guarantees, adjustments |
| `billing` | department bills: the site's tariff, the pools shared out and their rules |
| `intensity` | energy-use intensity targets (GB/T 51161, the 公共机构 quotas) |
| `reports` | the monthly energy report: where it is kept, when `epcmon run` writes it |
| `alarms` | the alarm rules `epcmon run` evaluates, their thresholds, raising and clearing |
| `notify` | where alarms are delivered: e-mail, webhooks, WeCom, DingTalk, Alertmanager |
| `faults` | the simulators' settings and fault schema |
| `anomalies` | the simulators' anomalies with their true start and end (what alarms should catch) |
| `site` | `SiteConfig`, the root, and `[api]` |
| `references` | the cross-references checked after validation |
| `environment` | what the environment overrides (and the secrets it alone carries) |
| `portfolio` | a directory of site files served by one deployment: `portfolio.toml` |
| `loading` | TOML in, `SiteConfig` or one `ConfigError` out |
"""

from core.config.alarms import RULE_NAMES, AlarmRules, AlarmsConfig, RuleSettings
from core.config.anomalies import ANOMALY_KINDS, Anomaly, AnomalyKind
from core.config.base import EntityId
from core.config.billing import AllocationRule, BillingConfig, Pool
from core.config.contracts import (
    KWH_PER_GJ,
    MODEL_NAMES,
    UTILITY_NAMES,
    BaselineSettings,
    Contract,
    GasBoundary,
    Guarantee,
    Measure,
    ModelName,
    NonRoutineAdjustment,
    StatementSettings,
    Tariff,
    TariffSeason,
    ThermalBoundary,
    TouPeriodName,
    TouWindow,
    Utilities,
    UtilityName,
    UtilityTerms,
    WaterBoundary,
)
from core.config.environment import INFLUX_ENV_PREFIX, influx_from_environment, with_environment
from core.config.faults import GatewayFaults, MeterFaults, SimulationConfig
from core.config.intensity import IntensityConfig, IntensityTarget, Metric
from core.config.loading import load_portfolio_file, load_site, parse_site
from core.config.meters import Gateway, Meter, ModbusSource
from core.config.mqtt import MqttConfig, MqttSource, PayloadField, PayloadFormat
from core.config.notify import (
    AlertmanagerChannel,
    DingtalkChannel,
    EmailChannel,
    NotifyConfig,
    WebhookChannel,
    WecomChannel,
)
from core.config.places import (
    Building,
    CalendarConfig,
    DayOverride,
    EndUse,
    MeterKind,
    SiteInfo,
    Tenant,
)
from core.config.portfolio import PORTFOLIO_FILE, Portfolio, PortfolioFile, PortfolioInfo
from core.config.reports import ReportsConfig
from core.config.site import ApiConfig, ScheduleConfig, SiteConfig, contract_weather_station
from core.config.storage import SECRET_ENV, InfluxConfig, SpoolConfig, StorageConfig
from core.config.topics import MqttRoute

__all__ = [
    "ANOMALY_KINDS",
    "INFLUX_ENV_PREFIX",
    "KWH_PER_GJ",
    "MODEL_NAMES",
    "PORTFOLIO_FILE",
    "RULE_NAMES",
    "SECRET_ENV",
    "UTILITY_NAMES",
    "AlarmRules",
    "AlarmsConfig",
    "AlertmanagerChannel",
    "AllocationRule",
    "Anomaly",
    "AnomalyKind",
    "ApiConfig",
    "BaselineSettings",
    "BillingConfig",
    "Building",
    "CalendarConfig",
    "Contract",
    "DayOverride",
    "DingtalkChannel",
    "EmailChannel",
    "EndUse",
    "EntityId",
    "GasBoundary",
    "Gateway",
    "GatewayFaults",
    "Guarantee",
    "InfluxConfig",
    "IntensityConfig",
    "IntensityTarget",
    "Measure",
    "Meter",
    "MeterFaults",
    "MeterKind",
    "Metric",
    "ModbusSource",
    "ModelName",
    "MqttConfig",
    "MqttRoute",
    "MqttSource",
    "NonRoutineAdjustment",
    "NotifyConfig",
    "PayloadField",
    "PayloadFormat",
    "Pool",
    "Portfolio",
    "PortfolioFile",
    "PortfolioInfo",
    "ReportsConfig",
    "RuleSettings",
    "ScheduleConfig",
    "SimulationConfig",
    "SiteConfig",
    "SiteInfo",
    "SpoolConfig",
    "StatementSettings",
    "StorageConfig",
    "Tariff",
    "TariffSeason",
    "Tenant",
    "ThermalBoundary",
    "TouPeriodName",
    "TouWindow",
    "Utilities",
    "UtilityName",
    "UtilityTerms",
    "WaterBoundary",
    "WebhookChannel",
    "WecomChannel",
    "contract_weather_station",
    "influx_from_environment",
    "load_portfolio_file",
    "load_site",
    "parse_site",
    "with_environment",
]
