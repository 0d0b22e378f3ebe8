"""The deployment files: deploy/compose.yaml parses and references only files that exist, the
Dockerfile copies what exists, the environment variables the program reads are exactly the
ones documented (and the other way round), the systemd units pass `systemd-analyze verify`,
deploy/mosquitto.conf runs on the real Mosquitto and refuses anonymous clients, and the
deployment site file is the reference site with only its deployment sections changed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from core.config import INFLUX_ENV_PREFIX, InfluxConfig, load_site
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROGRAM = (
    "core",
    "storage",
    "collectors",
    "processing",
    "api",
    "dashboards",
    "simulators",
    "epcmon",
)
# Mounted by compose.yaml but built by the dashboards work (deploy/grafana/): their existence
# is that work's test; here they only have to be under deploy/grafana/.
GRAFANA_MOUNTS = {"./grafana/provisioning", "./grafana/dashboards"}

ENV_READ = re.compile(r"""(?:getenv\(|environ\.get\(|environ\[)\s*["']([A-Z][A-Z0-9_]*)["']""")
EPCMON_LITERAL = re.compile(r"""["'](EPCMON_[A-Z0-9_]*[A-Z0-9])["']""")
ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
COMPOSE_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
DOC_ENV_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|", re.MULTILINE)


def compose() -> dict[str, object]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def program_environment() -> set[str]:
    """Every variable the program reads: literal names in its sources, and the
    `EPCMON_INFLUX_<KEY>` override of every `[storage.influx]` key."""
    names: set[str] = set()
    for package in PROGRAM:
        for source in (ROOT / package).rglob("*.py"):
            text = source.read_text()
            names |= set(ENV_READ.findall(text)) | set(EPCMON_LITERAL.findall(text))
    names |= {INFLUX_ENV_PREFIX + key.upper() for key in InfluxConfig.model_fields}
    return names


def env_example() -> set[str]:
    return set(ENV_LINE.findall((DEPLOY / ".env.example").read_text()))


def test_compose_parses_with_the_services_the_deployment_needs():
    services = compose()["services"]
    assert isinstance(services, dict)
    assert set(services) == {
        "mosquitto",
        "influxdb",
        "grafana",
        "collector-1",
        "collector-2",
        "api",
    }
    assert services["influxdb"]["image"].startswith("influxdb:2.7")
    assert services["grafana"]["image"].startswith("grafana/grafana:11.6")
    grafana_env = services["grafana"]["environment"]
    assert grafana_env["GF_INSTALL_PLUGINS"] == "yesoreyeram-infinity-datasource"
    # two collectors, each its own shard (so its own stable client id `<client_id>-<i>`)
    shards = [services[f"collector-{i}"]["command"] for i in (1, 2)]
    assert [c[c.index("--shard") + 1] for c in shards] == ["1/2", "2/2"]
    assert all(c[c.index("--role") + 1] == "collector" for c in shards)
    api = services["api"]["command"]
    assert api[api.index("--role") + 1] == "api"
    # one spool per process: no two epcmon services share a data volume
    data_volumes = [
        next(v for v in services[s]["volumes"] if v.endswith(":/var/lib/epcmon"))
        for s in ("collector-1", "collector-2", "api")
    ]
    assert len(set(data_volumes)) == 3


def test_the_deploy_site_file_shares_groups_and_authenticates():
    site = load_site(DEPLOY / "site.toml")
    assert site.mqtt.shared_group
    assert site.mqtt.username
    assert site.mqtt.client_id
    assert site.mqtt.url == "mqtt://mosquitto:1883"
    assert site.storage.backend == "influx"
    assert site.storage.influx.url == "http://influxdb:8086"
    assert not Path(site.storage.spool.path).is_absolute()  # one per working directory
    reference = load_site(ROOT / "sites" / "luan-admin-center.toml")
    for section in ("site", "calendar", "buildings", "tenants", "gateways", "meters", "contracts"):
        assert getattr(site, section) == getattr(reference, section), section


def test_compose_references_only_files_that_exist():
    services = compose()["services"]
    assert isinstance(services, dict)
    sources: set[str] = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                sources.add(source)
        for env_file in [service["env_file"]] if "env_file" in service else []:
            assert env_file == ".env", name  # created from .env.example, never committed
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
    for source in sources - GRAFANA_MOUNTS:
        assert (DEPLOY / source).exists(), source
    for source in GRAFANA_MOUNTS:
        assert (DEPLOY / source).resolve().is_relative_to(DEPLOY / "grafana")
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    mosquitto_conf = (DEPLOY / "mosquitto.conf").read_text()
    for setting in ("persistence true", "allow_anonymous false", "max_queued_messages 1000000"):
        assert setting in mosquitto_conf


def test_the_dockerfile_copies_what_exists():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("#")
    assert "FROM python:3.11-slim" in dockerfile
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE)
    assert copied
    for line in copied:
        for source in line.split():
            assert (ROOT / source).exists(), source
    # every package the project installs is copied
    for package in PROGRAM:
        assert f"COPY {package} " in dockerfile, package


def test_every_environment_variable_is_documented_and_every_documented_one_is_used():
    program = program_environment()
    example = env_example()
    compose_vars = set(COMPOSE_VAR.findall((DEPLOY / "compose.yaml").read_text()))
    # .env.example: what the program reads, plus what compose substitutes; nothing else
    assert program - example == set(), "read by epcmon, missing from deploy/.env.example"
    assert compose_vars - example == set(), "used by compose.yaml, missing from .env.example"
    assert example - program - compose_vars == set(), ".env.example names nothing reads"
    assert {n for n in example if n.startswith("EPCMON_")} == program
    # docs/operations.md's environment table: the same names
    documented = set(DOC_ENV_ROW.findall((ROOT / "docs" / "operations.md").read_text()))
    assert documented == program | compose_vars


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = require("systemd-analyze", "systemd")
    epcmon = shutil.which("epcmon", path=str(Path(__import__("sys").executable).parent))
    assert epcmon, "the epcmon console script of this environment"
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"epcmon-api.service", "epcmon-collector@.service"}
    checked = []
    for unit in units:
        # verify needs the ExecStart binary to exist: point it at this environment's epcmon
        text = unit.read_text().replace("/opt/epcmon/venv/bin/epcmon", epcmon)
        name = unit.name.replace("@.service", "@1-2.service")  # an instance of the template
        (tmp_path / name).write_text(text)
        checked.append(str(tmp_path / name))
        assert "User=epcmon" in text, unit.name
        assert "Restart=always" in text, unit.name
    result = subprocess.run(
        [analyze, "verify", "--man=no", *checked], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning either


def test_the_profile_example_in_the_operations_guide_is_a_valid_profile():
    import tomllib

    from collectors.profiles import Profile

    text = (ROOT / "docs" / "operations.md").read_text()
    block = next(b for b in re.findall(r"```toml\n(.*?)```", text, re.DOTALL) if "fields" in b)
    profile = Profile.model_validate(tomllib.loads(block))
    assert profile.name == "acme-em100"
    assert len(profile.fields) == 2


def test_the_readme_links_the_operations_guide_and_the_deploy_files():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/operations.md)" in readme
    guide = (ROOT / "docs" / "operations.md").read_text()
    for path in re.findall(r"`(deploy/[^`\s]+)`", readme + guide):
        if not path.startswith("deploy/grafana/") and path != "deploy/.env":
            assert (ROOT / path).exists(), path


def test_the_deploy_mosquitto_conf_runs_and_refuses_anonymous_clients(tmp_path):
    """deploy/mosquitto.conf on the real Mosquitto: only the port and paths are changed."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from tests.conftest import free_port, wait_for_port

    binary = require("mosquitto", "mosquitto")
    passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwd = tmp_path / "passwd"
    subprocess.run([passwd_tool, "-b", "-c", str(passwd), "epcmon", "s3cret"], check=True)
    port = free_port()
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    conf = conf.replace("/etc/mosquitto/passwd", str(passwd))
    conf = conf.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    conf += "log_dest none\n" + ("user root\n" if __import__("os").geteuid() == 0 else "")
    (tmp_path / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)

        def connect(username: str | None, password: str | None) -> bool:
            answered = threading.Event()
            ok: list[bool] = []
            c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            if username:
                c.username_pw_set(username, password)

            def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
                ok.append(not getattr(reason, "is_failure", True))
                answered.set()

            c.on_connect = on_connect
            c.connect("127.0.0.1", port)
            c.loop_start()
            try:
                assert answered.wait(10), "no CONNACK"
            finally:
                c.disconnect()
                c.loop_stop()
            return ok[0]

        assert not connect(None, None)
        assert not connect("epcmon", "wrong")
        assert connect("epcmon", "s3cret")
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_alert_rules_use_only_metrics_epcmon_exports():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exported = (ROOT / "api" / "metrics.py").read_text()
    counters = set(
        re.findall(r"\"([a-z_]+)\"", (ROOT / "collectors" / "mqtt" / "subscriber.py").read_text())
        + re.findall(r"\"([a-z_]+)\"", (ROOT / "collectors" / "modbus" / "poller.py").read_text())
    )
    guide = (ROOT / "docs" / "operations.md").read_text()
    for rule in rules["groups"][0]["rules"]:
        assert f"`{rule['alert']}`" in guide, rule["alert"]  # in the guide's alert table
        for metric in re.findall(r"\b(epcmon_[a-z_]+)", rule["expr"]):
            base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
            assert f'"{base}"' in exported, metric
        for event in re.findall(r'event="([a-z_]+)"', rule["expr"]):
            assert event in counters, event
