"""The deployment files: deploy/compose.yaml parses and references only files that exist, the
Dockerfile copies what exists, the environment variables the program reads are exactly the
ones documented (and the other way round), the systemd units pass `systemd-analyze verify`,
deploy/mosquitto.conf runs on the real Mosquitto and refuses anonymous clients, its persistence
directory is checked to be writable by the user Mosquitto runs as (and a broker whose directory
is not loses its queued messages on a crash, shown on the real Mosquitto), and the deployment
site file is the reference site with only its deployment sections changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from core.config import INFLUX_ENV_PREFIX, InfluxConfig, load_site
from tests.conftest import IN_CI, require

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
    assert {u.name for u in units} == {
        "epcmon-api.service",
        "epcmon-collector@.service",
        "epcmon-web@.service",
        "epcmon-worker.service",
    }
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


def deploy_mosquitto_conf(
    directory: Path,
    port: int,
    persistence: Path,
    *,
    autosave_s: int | None = None,
    log: Path | None = None,
) -> Path:
    """deploy/mosquitto.conf with only the listener, the paths (and the autosave interval)
    changed; the password file (user `epcmon`, password `s3cret`) beside it; the log in `log`
    (flushed line by line, unlike stdout), or none."""
    passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwd = directory / "passwd"
    subprocess.run([passwd_tool, "-b", "-c", str(passwd), "epcmon", "s3cret"], check=True)
    passwd.chmod(0o644)  # read after Mosquitto dropped to its user
    conf = (DEPLOY / "mosquitto.conf").read_text()
    for old, new in (
        ("listener 1883", f"listener {port} 127.0.0.1"),
        ("/etc/mosquitto/passwd", str(passwd)),
        ("persistence_location /var/lib/mosquitto/", f"persistence_location {persistence}/"),
    ) + ((("autosave_interval 60", f"autosave_interval {autosave_s}"),) if autosave_s else ()):
        assert old in conf, old
        conf = conf.replace(old, new)
    path = directory / "mosquitto.conf"
    path.write_text(conf + (f"log_dest file {log}\n" if log else "log_dest none\n"))
    return path


def test_the_deploy_mosquitto_conf_runs_and_refuses_anonymous_clients(tmp_path):
    """deploy/mosquitto.conf on the real Mosquitto: only the port and paths are changed."""
    from tests.conftest import free_port, wait_for_port

    binary = require("mosquitto", "mosquitto")
    port = free_port()
    conf = deploy_mosquitto_conf(tmp_path, port, tmp_path)
    # as root Mosquitto drops to user `mosquitto`, which cannot write pytest's temp dir
    with conf.open("a") as fh:
        fh.write("user root\n" if os.geteuid() == 0 else "")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, proc)
        assert not connect(port, None, None)
        assert not connect(port, "epcmon", "wrong")
        assert connect(port, "epcmon", "s3cret")
    finally:
        proc.terminate()
        proc.wait(10)


def connect(port: int, username: str | None, password: str | None) -> bool:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

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


# ------------------------------------------------------------------ Mosquitto's persistence

CHECK = DEPLOY / "check-mosquitto.sh"


def check_mosquitto(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(CHECK), str(conf)], capture_output=True, text=True, timeout=30, check=False
    )


def require_root_and_the_mosquitto_user() -> tuple[int, int]:
    """Mosquitto runs as user `mosquitto` only when started as root: what these tests show."""
    import pwd

    reason = ""
    if os.geteuid() != 0:
        reason = "needs root: Mosquitto drops to user `mosquitto` only when started as root"
    else:
        try:
            entry = pwd.getpwnam("mosquitto")
        except KeyError:
            reason = "no user `mosquitto` (the Debian package mosquitto creates it)"
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return entry.pw_uid, entry.pw_gid


@contextmanager
def reachable_dir() -> Iterator[Path]:
    """A temp dir user `mosquitto` can reach (pytest's are private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="epcmon-mosquitto-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("persistence true", "persistence false"), "persistence is off"),
        (("persistence true\n", ""), "persistence is off"),
        (("persistence_location /var/lib/mosquitto/\n", ""), "persistence_location is not set"),
        (("/var/lib/mosquitto/", "/var/lib/mosquitto"), "does not end in /"),
        (("/var/lib/mosquitto/", "/nonexistent/epcmon-mosquitto/"), "does not exist"),
    ],
)
def test_check_mosquitto_refuses_a_configuration_without_persistence(
    tmp_path: Path, change: tuple[str, str], says: str
):
    conf = (DEPLOY / "mosquitto.conf").read_text()
    assert change[0] in conf
    (tmp_path / "mosquitto.conf").write_text(conf.replace(change[0], change[1]))
    done = check_mosquitto(tmp_path / "mosquitto.conf")
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert says in done.stdout


def test_check_mosquitto_follows_include_dir(tmp_path: Path):
    """Debian: /etc/mosquitto/mosquitto.conf includes conf.d/, where deploy/mosquitto.conf goes."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "main.conf").write_text(f"persistence false\ninclude_dir {tmp_path}/conf.d\n")
    (tmp_path / "conf.d" / "epcmon.conf").write_text(
        f"persistence true\npersistence_location {tmp_path}/nothing-here/\n"
    )
    done = check_mosquitto(tmp_path / "main.conf")
    assert done.returncode == 1
    assert f"{tmp_path}/nothing-here/ does not exist" in done.stdout


def test_check_mosquitto_fails_on_a_root_owned_directory_and_passes_when_mosquitto_owns_it():
    uid, gid = require_root_and_the_mosquitto_user()
    require("mosquitto", "mosquitto")
    with reachable_dir() as directory:
        persistence = directory / "persistence"
        persistence.mkdir(mode=0o755)  # root's, as `mkdir` as root leaves it
        conf = deploy_mosquitto_conf(directory, 1883, persistence)
        done = check_mosquitto(conf)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.startswith("check-mosquitto: FAIL: user mosquitto cannot write ")
        assert f"{persistence}/ (owner root:root" in done.stdout
        assert f"chown -R mosquitto: {persistence}/" in done.stdout
        os.chown(persistence, uid, gid)
        done = check_mosquitto(conf)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (
            done.stdout
            == f"check-mosquitto: OK: user mosquitto can write {persistence}/ (persistence true, {conf})\n"
        )


@pytest.mark.parametrize("writable", [True, False], ids=["mosquitto-owned", "root-owned"])
def test_queued_messages_survive_a_broker_kill_only_when_its_user_can_write_the_directory(
    writable: bool,
):
    """The point of the check, on the real Mosquitto run as the deploy configures it: a
    collector's persistent session holds QoS 1 messages while the collector is away; the
    broker saves them (autosave, here every second), is killed with SIGKILL and restarted.
    With its directory writable the session and every message come back; with a root-owned
    directory each save fails in the broker's log only, and both are gone."""
    import signal

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from tests.conftest import free_port, wait_for_port

    uid, gid = require_root_and_the_mosquitto_user()
    binary = require("mosquitto", "mosquitto")
    messages = [f"reading {i}".encode() for i in range(50)]
    client_id = f"collector-{uuid.uuid4().hex[:8]}"
    topic = f"epcmon-test/{client_id}/power"

    def client(cid: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        c.username_pw_set("epcmon", "s3cret")
        return c

    def collector(on_message: object = None) -> tuple[mqtt.Client, threading.Event, list[bool]]:
        """The collector's session: stable id, not clean, kept for an hour."""
        c = client(client_id)
        connected = threading.Event()
        present: list[bool] = []

        def on_connect(_c: object, _u: object, flags: object, _r: object, _p: object) -> None:
            present.append(bool(getattr(flags, "session_present", False)))
            connected.set()

        c.on_connect = on_connect
        if on_message is not None:
            c.on_message = on_message  # type: ignore[assignment]
        expiry = Properties(PacketTypes.CONNECT)
        expiry.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", port, clean_start=False, properties=expiry)
        c.loop_start()
        assert connected.wait(10), "no CONNACK"
        return c, connected, present

    def saves() -> int:
        return log_path.read_text().count("Saving in-memory database")

    def wait_until(condition: object, what: str, timeout: float = 20.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"{what}; broker log:\n{log_path.read_text()}"
            time.sleep(0.05)  # the broker works in its own process: look again

    with reachable_dir() as directory:
        persistence = directory / "persistence"
        persistence.mkdir(mode=0o755)
        if writable:
            os.chown(persistence, uid, gid)
        port = free_port()
        log_path = directory / "broker.log"
        log_path.touch()
        os.chown(log_path, uid, gid)  # Mosquitto writes it as its user
        conf = deploy_mosquitto_conf(directory, port, persistence, autosave_s=1, log=log_path)
        assert check_mosquitto(conf).returncode == (0 if writable else 1)
        broker = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(port, broker)
            # the collector subscribes, then goes away
            sub, _, _ = collector()
            subscribed = threading.Event()
            sub.on_subscribe = lambda *_: subscribed.set()
            sub.subscribe(topic, qos=1)
            assert subscribed.wait(10), "no SUBACK"
            sub.disconnect()
            sub.loop_stop()
            # meters publish while it is away: the broker queues them in the session
            meter = client(f"meter-{client_id}")
            meter.connect("127.0.0.1", port)
            meter.loop_start()
            for payload in messages:
                meter.publish(topic, payload, qos=1).wait_for_publish(10)
            meter.disconnect()
            meter.loop_stop()
            # two saves begun after the last PUBACK: the first of them is complete
            before = saves()
            wait_until(lambda: saves() >= before + 2, "the broker did not save twice")
            broker.send_signal(signal.SIGKILL)
            broker.wait(10)

            broker = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            wait_for_port(port, broker)
            got: list[bytes] = []
            lock = threading.Lock()

            def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
                with lock:
                    got.append(msg.payload)

            sub, _, present = collector(on_message)
            try:
                if writable:
                    assert present == [True]
                    wait_until(lambda: len(got) >= len(messages), "queued messages missing")
                    assert got == messages  # every one, in order, once
                else:
                    assert present == [False]  # the broker forgot the session
                    # anything still queued would be delivered before a message sent now
                    subscribed.clear()
                    sub.on_subscribe = lambda *_: subscribed.set()
                    sub.subscribe(topic, qos=1)
                    assert subscribed.wait(10), "no SUBACK"
                    marker = client(f"marker-{client_id}")
                    marker.connect("127.0.0.1", port)
                    marker.loop_start()
                    marker.publish(topic, b"marker", qos=1).wait_for_publish(10)
                    marker.disconnect()
                    marker.loop_stop()
                    wait_until(lambda: b"marker" in got, "the marker did not arrive")
                    assert got == [b"marker"]  # the 50 queued readings are lost
                    text = log_path.read_text()
                    assert "Error saving in-memory database" in text
                    assert "Permission denied" in text
            finally:
                sub.disconnect()
                sub.loop_stop()
        finally:
            if broker.poll() is None:
                broker.terminate()
                broker.wait(10)


def test_compose_and_systemd_give_mosquitto_its_directory_and_check_it(tmp_path: Path):
    """Compose: the entrypoint chowns the volume, then runs the check, then the broker.
    Debian: a drop-in for mosquitto.service creates the directory for user `mosquitto` and
    runs the check before every start (systemd-analyze verify loads it)."""
    services = compose()["services"]
    assert isinstance(services, dict)
    assert (
        "./check-mosquitto.sh:/etc/epcmon/check-mosquitto.sh:ro" in services["mosquitto"]["volumes"]
    )
    entrypoint = (DEPLOY / "mosquitto-entrypoint.sh").read_text().splitlines()
    chown = entrypoint.index("chown -R mosquitto:mosquitto /var/lib/mosquitto")
    check = entrypoint.index("sh /etc/epcmon/check-mosquitto.sh /mosquitto/config/mosquitto.conf")
    start = entrypoint.index("exec mosquitto -c /mosquitto/config/mosquitto.conf")
    assert chown < check < start
    assert "set -eu" in entrypoint  # a failed check stops the container

    dropin = DEPLOY / "systemd" / "mosquitto.service.d" / "epcmon.conf"
    text = dropin.read_text()
    assert (
        "ExecStartPre=/usr/bin/install -d -o mosquitto -g mosquitto -m 750 /var/lib/mosquitto"
        in text
    )
    assert "ExecStartPre=/opt/epcmon/check-mosquitto.sh /etc/mosquitto/mosquitto.conf" in text
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert "install -m 755 deploy/check-mosquitto.sh /opt/epcmon/check-mosquitto.sh" in guide
    assert "deploy/systemd/mosquitto.service.d/epcmon.conf" in guide

    analyze = require("systemd-analyze", "systemd")
    unit = Path("/lib/systemd/system/mosquitto.service")
    if not unit.exists():
        reason = "Debian's mosquitto.service is not installed (package mosquitto)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    shutil.copy(unit, tmp_path / "mosquitto.service")
    (tmp_path / "mosquitto.service.d").mkdir()
    (tmp_path / "mosquitto.service.d" / "epcmon.conf").write_text(
        text.replace("/opt/epcmon/check-mosquitto.sh", str(CHECK))
    )
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "mosquitto.service")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "debug"},
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"DropIn Path: {tmp_path}/mosquitto.service.d/epcmon.conf" in result.stdout + result.stderr
    )
    assert not [line for line in result.stderr.splitlines() if "warning" in line.lower()]


def test_the_alert_rules_use_only_metrics_epcmon_exports():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exported = (ROOT / "api" / "metrics.py").read_text()
    collectors = [*(ROOT / "collectors" / "mqtt").glob("*.py")]
    collectors += (ROOT / "collectors" / "modbus").glob("*.py")
    counters = {c for f in collectors for c in re.findall(r"\"([a-z_]+)\"", f.read_text())}
    guide = (ROOT / "docs" / "operations.md").read_text()
    for rule in rules["groups"][0]["rules"]:
        assert f"`{rule['alert']}`" in guide, rule["alert"]  # in the guide's alert table
        for metric in re.findall(r"\b(epcmon_[a-z_]+)", rule["expr"]):
            base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
            assert f'"{base}"' in exported, metric
        for event in re.findall(r'event="([a-z_]+)"', rule["expr"]):
            assert event in counters, event


# --- Grafana as compose runs it -------------------------------------------------------------

COMPOSE_SUBST = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")
GRAFANA_ENV = re.compile(
    r"\$__env\{([^}]*)\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


def env_example_values() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def compose_substitute(value: str, env: dict[str, str]) -> str:
    """Docker Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` from .env."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m[1], m[2] or "", m[3] or ""
        have = env.get(name, "")
        if op.endswith("-"):
            return have or arg
        if op.endswith("?"):
            assert have, f"compose refuses to start without {name}: {arg}"
        return have

    return COMPOSE_SUBST.sub(one, value)


def grafana_expand(value: str, env: dict[str, str]) -> str:
    """What Grafana does to every string of a provisioning file (pkg/services/provisioning/
    values): `$$` is a literal `$`; `$__env{X}`, `${X}` and `$X` are X from its environment,
    an unset one silently empty: here an unset one fails, naming it."""

    def one(m: re.Match[str]) -> str:
        name = m[1] or m[2] or m[3]
        assert name in env, f"Grafana expands ${name} in {value!r}, but its environment lacks it"
        return env[name]

    return "$".join(GRAFANA_ENV.sub(one, part) for part in value.split("$$"))


def expand_all(data: object, env: dict[str, str]) -> object:
    if isinstance(data, str):
        return grafana_expand(data, env)
    if isinstance(data, list):
        return [expand_all(v, env) for v in data]
    if isinstance(data, dict):
        return {k: expand_all(v, env) for k, v in data.items()}
    return data


def grafana_service() -> tuple[dict[str, str], dict[str, Path]]:
    """Grafana's environment as compose sets it (from .env.example) and its mounts
    (container path -> host path)."""
    service = compose()["services"]["grafana"]  # type: ignore[index]
    dotenv = env_example_values()
    env = {k: compose_substitute(str(v), dotenv) for k, v in service["environment"].items()}
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target.rstrip("/")] = (DEPLOY / source).resolve()
    return env, mounts


def in_container(path: str, mounts: dict[str, Path]) -> Path:
    """The host directory a container path shows (the longest mount holding it)."""
    holders = [t for t in mounts if path == t or path.startswith(t + "/")]
    assert holders, f"{path}: no bind mount of the grafana service shows it"
    target = max(holders, key=len)
    return mounts[target] / path[len(target) :].lstrip("/")


def test_grafana_reads_the_provisioning_compose_mounts_and_it_agrees():
    """Read deploy/compose.yaml and the provisioning as Grafana in that container would:
    provisioning from /etc/grafana/provisioning, the provider's path through the mounts,
    every environment reference expanded from the container's environment; the datasources
    reach the compose services by name with the token InfluxDB was set up with."""
    env, mounts = grafana_service()
    provisioning = in_container(
        env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"), mounts
    )
    providers = []
    for file in sorted((provisioning / "dashboards").glob("*.yaml")):
        providers += expand_all(yaml.safe_load(file.read_text()), env)["providers"]
    assert providers, "no dashboard provider under the mounted provisioning"
    uids = set()
    for provider in providers:
        folder = in_container(provider["options"]["path"], mounts)
        dashboards = sorted(folder.glob("*.json"))
        assert dashboards, f"the provider reads {provider['options']['path']}: no dashboards there"
        uids |= {yaml.safe_load(d.read_text())["uid"] for d in dashboards}
    assert {"epcmon-overview", "epcmon-meter", "epcmon-operations"} <= uids

    sources = []
    for file in sorted((provisioning / "datasources").glob("*.yaml")):
        sources += expand_all(yaml.safe_load(file.read_text()), env)["datasources"]
    by_type = {s["type"]: s for s in sources}
    services = compose()["services"]
    site = load_site(DEPLOY / "site.toml")
    dotenv = env_example_values()

    influx = by_type["influxdb"]
    assert influx["url"] == "http://influxdb:8086"  # the compose service, not 127.0.0.1
    assert "influxdb" in services
    assert influx["jsonData"]["dbName"] == site.storage.influx.database
    assert f"--db {site.storage.influx.database}" in (DEPLOY / "influxdb/init-dbrp.sh").read_text()
    influx_env = services["influxdb"]["environment"]  # type: ignore[index]
    admin_token = compose_substitute(influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"], dotenv)
    assert admin_token == dotenv["EPCMON_INFLUX_TOKEN"]  # what epcmon writes with
    header = influx["jsonData"]["httpHeaderName1"], influx["secureJsonData"]["httpHeaderValue1"]
    assert header == ("Authorization", f"Token {admin_token}")

    api = by_type["yesoreyeram-infinity-datasource"]
    assert api["url"] == f"http://api:{site.api.port}"
    assert "api" in services
    assert api["jsonData"]["allowedHosts"] == [api["url"]]
    assert api["jsonData"]["httpHeaderName1"] == "Authorization"
    assert api["secureJsonData"]["httpHeaderValue1"] == f"Bearer {dotenv['EPCMON_VIEWER_KEY']}"
    for source in sources:
        assert "127.0.0.1" not in source["url"], source
        assert "localhost" not in source["url"], source

    # every panel's datasource is one that is provisioned
    provisioned = {s["uid"] for s in sources}
    for file in in_container(providers[0]["options"]["path"], mounts).glob("*.json"):
        text = file.read_text()
        for uid in set(re.findall(r'"uid": "(epcmon-[a-z]+)"', text)) - uids:
            assert uid in provisioned, f"{file.name}: datasource {uid} is not provisioned"


def test_grafana_expansion_is_grafana_s():
    env = {"A": "x", "TOKEN": "t0k"}
    assert grafana_expand("Token $__env{TOKEN}", env) == "Token t0k"
    assert grafana_expand("${A}/$A", env) == "x/x"
    assert grafana_expand("cost $$5", env) == "cost $5"
    with pytest.raises(AssertionError, match="lacks it"):
        grafana_expand("$__env{MISSING}", env)
