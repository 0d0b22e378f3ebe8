"""Site-file validation: every bad case names the file, the entity and the key."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import load_site
from core.errors import ConfigError
from epcmon.sites import load

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
[site]
id = "t"
name = "测试"
latitude = 31.7
longitude = 116.5

[[buildings]]
id = "main"
name = "主楼"
floor_area_m2 = 1000

[[tenants]]
id = "dept-01"
name = "办公室"
building = "main"
floor_area_m2 = 300

[[gateways]]
id = "gw1"
host = "127.0.0.1"
port = 15020

[payload_formats.flat]
timestamp = "/ts"
timestamp_format = "epoch_ms"
fields = [{ pointer = "/p", quantity = "power", unit = "W" }]

[[meters]]
id = "E-1"
kind = "electricity"
building = "main"
tenant = "dept-01"
[meters.modbus]
gateway = "gw1"
unit = 1
profile = "eastron-sdm630"

[[meters]]
id = "E-2"
kind = "electricity"
building = "main"
[meters.mqtt]
topic = "t/e2"
format = "flat"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_site_loads(tmp_path):
    site = load(write(tmp_path, MINIMAL))
    assert [m.id for m in site.meters] == ["E-1", "E-2"]
    assert site.meters_by_id["E-1"].protocol == "modbus"
    assert site.api.host == "127.0.0.1"  # listens on loopback unless configured
    with pytest.raises(ValidationError, match="frozen"):
        site.site.id = "x"


BAD_CASES = [
    # (name, replace-from, replace-to, entity, key, message fragment)
    ("wrong type", "unit = 1", 'unit = "one"', "meter 'E-1'", "modbus.unit", "integer"),
    (
        "unit id out of range",
        "unit = 1",
        "unit = 300",
        "meter 'E-1'",
        "modbus.unit",
        "less than or equal to 247",
    ),
    (
        "unknown key",
        'kind = "electricity"\nbuilding = "main"\ntenant',
        'kind = "electricity"\ncolour = "red"\nbuilding = "main"\ntenant',
        "meter 'E-1'",
        "colour",
        "unknown key",
    ),
    (
        "unknown profile",
        'profile = "eastron-sdm630"',
        'profile = "eastron-sdm999"',
        "meter 'E-1'",
        "modbus.profile",
        "unknown profile 'eastron-sdm999'",
    ),
    ("duplicate meter id", 'id = "E-2"', 'id = "E-1"', "meter 'E-1'", "id", "duplicate id"),
    (
        "missing gateway",
        'gateway = "gw1"',
        'gateway = "gw9"',
        "meter 'E-1'",
        "modbus.gateway",
        "no gateway 'gw9'",
    ),
    (
        "bad timezone",
        "longitude = 116.5",
        'longitude = 116.5\ntimezone = "Asia/Shanghia"',
        "[site]",
        "timezone",
        "unknown IANA time zone",
    ),
    (
        "missing building",
        'building = "main"\ntenant',
        'building = "annex"\ntenant',
        "meter 'E-1'",
        "building",
        "no building 'annex'",
    ),
    (
        "tenant in missing building",
        'building = "main"\nfloor_area_m2 = 300',
        'building = "nowhere"\nfloor_area_m2 = 300',
        "tenant 'dept-01'",
        "building",
        "no building 'nowhere'",
    ),
    (
        "unknown quantity in a payload format",
        'quantity = "power"',
        'quantity = "powr"',
        "payload_format 'flat'",
        "fields.0.quantity",
        "unknown quantity 'powr'",
    ),
    (
        "unit that cannot express the quantity",
        'unit = "W" }',
        'unit = "m3" }',
        "payload_format 'flat'",
        "fields.0.unit",
        "cannot express",
    ),
    ("wildcard topic", 'topic = "t/e2"', 'topic = "t/+"', "meter 'E-2'", "mqtt.topic", "concrete"),
    (
        "unknown payload format",
        'format = "flat"',
        'format = "nested"',
        "meter 'E-2'",
        "mqtt.format",
        "no payload format 'nested'",
    ),
    ("bad meter id", 'id = "E-2"', 'id = "E 2/x"', "meter 'E 2/x'", "id", "pattern"),
    (
        "two sources",
        '[meters.mqtt]\ntopic = "t/e2"',
        '[meters.modbus]\ngateway = "gw1"\nunit = 2\nprofile = "eastron-sdm630"\n[meters.mqtt]\ntopic = "t/e2"',
        "meter 'E-2'",
        "(entry)",
        "exactly one source",
    ),
    (
        "MQTT url with a port out of range",
        "[[gateways]]",
        '[mqtt]\nurl = "mqtt://127.0.0.1:99999"\n\n[[gateways]]',
        "[mqtt]",
        "url",
        "port '99999' is not a TCP port",
    ),
    (
        "InfluxDB url with a port out of range",
        "[[gateways]]",
        '[storage.influx]\nurl = "http://127.0.0.1:99999"\n\n[[gateways]]',
        "[storage]",
        "influx.url",
        "port '99999' is not a TCP port",
    ),
    (
        "route pattern with a wildcard",
        "[[gateways]]",
        '[mqtt.routes.plugs]\npattern = "tele/+/SENSOR"\nmeter = "P-{d}"\nformat = "flat"\n\n[[gateways]]',
        "[mqtt]",
        "routes.plugs.pattern",
        "not MQTT wildcards",
    ),
    (
        "ratio on a profile without transformer registers",
        'profile = "eastron-sdm630"',
        'profile = "eastron-sdm630"\nct_ratio = 40',
        "meter 'E-1'",
        "modbus.ct_ratio",
        "has no register scaled by it",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "entity", "key", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_bad_site_names_file_entity_and_key(tmp_path, name, old, new, entity, key, message):
    assert old in MINIMAL, name
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load(path)
    err = info.value
    assert err.file == str(path)
    assert err.entity == entity
    assert err.key == key
    assert message in str(err)
    assert str(err).startswith(f"{path}: {entity}: {key}: ")


def test_not_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[site\nid=")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_site(path)
    assert info.value.file == str(path)


def test_not_utf8_names_the_file_and_line(tmp_path):
    """A site file saved as GBK (a common editor default here) is one line, not a traceback."""
    path = tmp_path / "site.toml"
    path.write_bytes(MINIMAL.replace("测试", "ceshi").encode() + "# 注释\n".encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_site(path)
    assert info.value.file == str(path)
    assert f"line {MINIMAL.count(chr(10)) + 1}" in str(info.value)


CONTRACT = """
[[meters]]
id = "WX"
kind = "weather"
building = "main"
[meters.mqtt]
topic = "t/wx"
format = "flat"

[[contracts]]
id = "c1"
name = "合同"
vendor = "ESCO"
meters = ["E-1"]
baseline_start = 2024-01-01
baseline_end = 2025-01-01
reporting_start = 2025-01-01
"""


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        (
            "reporting_start = 2025-01-01",
            "reporting_start = 2024-06-01",
            "reporting_start",
            "inside the baseline period",
        ),
        ("baseline_end = 2025-01-01", "baseline_end = 2023-06-01", "baseline_end", "after"),
        (
            "reporting_start = 2025-01-01",
            "reporting_start = 2025-01-01\nreporting_end = 2024-12-01",
            "reporting_end",
            "after reporting_start",
        ),
    ],
)
def test_contract_periods_name_the_key(tmp_path, old, new, key, message):
    """Overlapping or reversed periods name the key at fault, not `(entry)`."""
    text = MINIMAL + CONTRACT.replace(old, new)
    with pytest.raises(ConfigError, match=message) as info:
        load(write(tmp_path, text))
    assert (info.value.entity, info.value.key) == ("contract 'c1'", key)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_site(tmp_path / "nope.toml")


def test_parent_cycle_is_refused(tmp_path):
    text = MINIMAL.replace('tenant = "dept-01"', 'tenant = "dept-01"\nparent = "E-2"').replace(
        'building = "main"\n[meters.mqtt]', 'building = "main"\nparent = "E-1"\n[meters.mqtt]'
    )
    with pytest.raises(ConfigError, match="cycle"):
        load(write(tmp_path, text))


def test_check_config_command_prints_summary_and_fails_on_error(tmp_path):
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "epcmon.cli",
            "check-config",
            str(ROOT / "sites/luan-admin-center.toml"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "57 departments" in good.stdout
    assert "meters: 116" in good.stdout
    assert "modbus" in good.stdout
    assert "mqtt" in good.stdout

    bad = write(tmp_path, MINIMAL.replace('gateway = "gw1"', 'gateway = "gw9"'))
    run = subprocess.run(
        [sys.executable, "-m", "epcmon.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 2
    assert f"{bad}: meter 'E-1': modbus.gateway: no gateway 'gw9'" in run.stderr


def test_reference_site_is_valid_toml_with_contract():
    data = tomllib.loads((ROOT / "sites/luan-admin-center.toml").read_text(encoding="utf-8"))
    assert data["contracts"][0]["measures"]
