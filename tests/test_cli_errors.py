"""Every user error of the `epcmon` command ends in one line on stderr that names what is wrong
(the option; for the site file: file, entity and key) and exit code 2, never a traceback.

Each row runs the real command (`python -m epcmon.cli`) in a temp directory, with the files
it needs: a small site file, a DuckDB file of garbage bytes, a port some other socket holds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "sites" / "luan-admin-center.toml"

# One Modbus meter, no MQTT (so no warning about a missing broker), every path in the test's
# directory; $-placeholders are filled per test (`site()` below).
SMALL_SITE = """
[site]
id = "cli-errors"
name = "错误测试"
latitude = 31.7
longitude = 116.5

[storage]
path = "$store"

[api]
host = "$api_host"
port = $api_port
keys_path = "$keys"

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
port = $gateway_port

[[meters]]
id = "E-1"
kind = "electricity"
building = "main"
tenant = "dept-01"
[meters.modbus]
gateway = "gw1"
unit = 1
profile = "eastron-sdm630"
"""


@dataclass
class Env:
    """The test's directory and the things rows refer to by name."""

    tmp: Path
    busy_port: int

    def site(self, name: str = "site.toml", **values: object) -> Path:
        from string import Template

        defaults: dict[str, object] = {
            "store": self.tmp / "store.duckdb",
            "api_host": "127.0.0.1",
            "api_port": 0,
            "keys": self.tmp / "keys.sqlite3",
            "gateway_port": 15020,
        }
        path = self.tmp / name
        path.write_text(Template(SMALL_SITE).substitute({**defaults, **values}), encoding="utf-8")
        return path


def garbage(name: str) -> Callable[[Env], None]:
    """A setup: a file of random bytes (a DuckDB or SQLite file gone bad)."""

    def setup(env: Env) -> None:
        (env.tmp / name).write_bytes(os.urandom(20_000))

    return setup


@dataclass(frozen=True)
class Case:
    """`epcmon *argv` (after `setup`) exits `code` with one stderr line containing `says`."""

    id: str
    argv: Callable[[Env], list[str]]
    code: int
    says: tuple[str, ...]
    setup: Callable[[Env], None] = field(default=lambda env: None)


def history(env: Env, *extra: str, frm: str = "2025-07-01", to: str = "2025-07-02") -> list[str]:
    return [
        "simulate", "history", "--site", str(REFERENCE), "--from", frm, "--to", to,
        "--meters", "E-D01", "--out", str(env.tmp / "h.csv"), "--no-progress", *extra,
    ]  # fmt: skip


def serve(env: Env, *extra: str) -> list[str]:
    return ["simulate", "serve", "--site", str(REFERENCE), "--any-port", "--duration", "1", *extra]


def copy(env: Env, *extra: str, source: str = "", destination: str = "") -> list[str]:
    source = source or f"duckdb:{env.tmp / 'from.duckdb'}"
    destination = destination or f"duckdb:{env.tmp / 'to.duckdb'}"
    state = ["--state", str(env.tmp / "state.json")] if "--state" not in extra else []
    return ["store", "copy", "--from", source, "--to", destination, "--no-progress", *state, *extra]


def with_source_store(env: Env) -> None:
    from core.readings import ReadingBatch
    from storage.duckdb_store import DuckDBStore

    with DuckDBStore(env.tmp / "from.duckdb") as store:
        store.write(ReadingBatch.for_series("E-1", "power", [1_751_328_000_000], [1.0]))


def junk_state(env: Env) -> None:
    with_source_store(env)
    (env.tmp / "junk.json").write_text("garbage")


def bad_reference(env: Env) -> None:
    path = env.site()
    path.write_text(path.read_text().replace('gateway = "gw1"', 'gateway = "gw9"'))


def demo(env: Env, *extra: str) -> list[str]:
    return [
        "demo", "--site", str(REFERENCE), "--data-dir", str(env.tmp / "demo"), "--duration", "1",
        *extra,
    ]  # fmt: skip


CASES = [
    # ---------------------------------------------------------------- simulate history
    Case("history: --to before --from", lambda e: history(e, frm="2025-07-02", to="2025-07-01"),
         2, ("--to", "2025-07-01", "after --from")),
    Case("history: --to equal to --from", lambda e: history(e, frm="2025-07-01", to="2025-07-01"),
         2, ("--to", "after --from")),
    Case("history: --interval 2m", lambda e: history(e, "--interval", "2m"),
         2, ("--interval", "'2m'", "1m, 5m, 15m, 30m or 1h")),
    Case("history: --seed -1", lambda e: history(e, "--seed", "-1"), 2, ("--seed", "-1")),
    Case("history: --seed abc", lambda e: history(e, "--seed", "abc"), 2, ("--seed", "abc")),
    Case("history: a month that does not exist", lambda e: history(e, frm="2025-13-01"),
         2, ("--from", "2025-13-01")),
    Case("history: before the simulation covers", lambda e: history(e, frm="1900-01-01", to="1900-01-02"),
         2, ("--from", "1900-01-01", "2000-01-02")),
    Case("history: after the simulation covers", lambda e: history(e, frm="9999-12-30", to="9999-12-31"),
         2, ("--from", "9999-12-30", "2100-12-31")),
    Case("history: a time off the interval grid",
         lambda e: history(e, frm="2025-07-01T00:07+08:00"), 2, ("--from", "15m")),
    Case("history: an unknown meter", lambda e: history(e, "--meters", "E-NOPE"),
         2, ("--meters", "E-NOPE")),
    Case("history: no meter at all", lambda e: history(e, "--meters", ","), 2, ("--meters",)),
    Case("history: --out of an unknown kind", lambda e: history(e, "--out", str(e.tmp / "x.txt")),
         2, ("--out", "x.txt", ".duckdb")),
    Case("history: --out where no file can be",
         lambda e: history(e, "--out", "/proc/no-such-dir/h.csv"), 2, ("--out", "/proc/no-such-dir")),
    Case("history: --out is a directory", lambda e: history(e, "--out", str(e.tmp / "d.csv")),
         2, ("--out", "d.csv"), setup=lambda e: (e.tmp / "d.csv").mkdir()),
    Case("history: --truth where no file can be",
         lambda e: history(e, "--truth", "/proc/no-such-dir/t.csv"), 2, ("--truth", "/proc/no-such-dir")),
    Case("history: --truth is --out", lambda e: history(e, "--truth", str(e.tmp / "h.csv")),
         2, ("--truth", "the same file as --out")),
    Case("history: a fault for an unknown meter", lambda e: history(e, "--fault", "E-NOPE:offline"),
         2, ("--fault", "E-NOPE")),
    Case("history: a fault of no known kind", lambda e: history(e, "--fault", "E-D01:nope=1"),
         2, ("--fault", "meter 'E-D01'", "nope")),
    Case("history: a fault that is not one", lambda e: history(e, "--fault", "garbage"),
         2, ("--fault", "METER:key=value")),
    Case("history: into a corrupt store",
         lambda e: ["simulate", "history", "--site", str(e.site(store=e.tmp / "bad.duckdb")),
                    "--from", "2025-07-01", "--to", "2025-07-02", "--no-progress"],
         2, ("bad.duckdb",), setup=garbage("bad.duckdb")),
    # ---------------------------------------------------------------- simulate serve
    Case("serve: --speed 0", lambda e: serve(e, "--speed", "0"), 2, ("--speed", "0")),
    Case("serve: --speed -5", lambda e: serve(e, "--speed", "-5"), 2, ("--speed",)),
    Case("serve: --speed nan", lambda e: serve(e, "--speed", "nan"), 2, ("--speed", "nan")),
    Case("serve: --speed inf", lambda e: serve(e, "--speed", "inf"), 2, ("--speed", "inf")),
    Case("serve: --seed -1", lambda e: serve(e, "--seed", "-1"), 2, ("--seed",)),
    Case("serve: --duration 0", lambda e: serve(e, "--duration", "0"), 2, ("--duration",)),
    Case("serve: --start before the simulation covers",
         lambda e: serve(e, "--start", "1900-01-01T00:00+08:00"), 2, ("--start", "2000-01-02")),
    Case("serve: --mqtt-url with port 99999",
         lambda e: serve(e, "--mqtt-url", "mqtt://127.0.0.1:99999"), 2, ("--mqtt-url", "99999")),
    Case("serve: a gateway's port is in use",
         lambda e: ["simulate", "serve", "--site", str(e.site(gateway_port=e.busy_port)),
                    "--duration", "1"],
         2, ("site.toml", "gateway 'gw1'", "port", "127.0.0.1:{busy}", "in use")),
    # ---------------------------------------------------------------- run / collect
    Case("run: --shard 3/2", lambda e: ["run", "--site", str(e.site()), "--shard", "3/2"],
         2, ("--shard", "3/2")),
    Case("collect: --shard 0/2", lambda e: ["collect", "--site", str(e.site()), "--shard", "0/2"],
         2, ("--shard", "0/2")),
    Case("collect: --shard 1/0", lambda e: ["collect", "--site", str(e.site()), "--shard", "1/0"],
         2, ("--shard", "1/0")),
    Case("collect: --shard x", lambda e: ["collect", "--site", str(e.site()), "--shard", "x"],
         2, ("--shard", "'x'", "i/n")),
    Case("run: the API's port is in use",
         lambda e: ["run", "--site", str(e.site(api_port=e.busy_port)),
                    "--data-dir", str(e.tmp / "data")],
         2, ("site.toml", "[api]", "port", "in use")),
    Case("run: the API's host is not this machine's",
         lambda e: ["run", "--site", str(e.site(api_host="192.0.2.1")),
                    "--data-dir", str(e.tmp / "data")],
         2, ("site.toml", "[api]", "host", "192.0.2.1")),
    Case("run: a corrupt store file",
         lambda e: ["run", "--site", str(e.site(store=e.tmp / "bad.duckdb")),
                    "--data-dir", str(e.tmp / "data")],
         2, ("bad.duckdb",), setup=garbage("bad.duckdb")),
    Case("run: API keys file that is not a database",
         lambda e: ["run", "--site", str(e.site(keys=e.tmp / "keys.bin")),
                    "--data-dir", str(e.tmp / "data")],
         2, ("site.toml", "[api]", "keys_path"), setup=garbage("keys.bin")),
    Case("run: --data-dir where none can be",
         lambda e: ["run", "--site", str(e.site()), "--data-dir", "/proc/no-such-dir"],
         2, ("--data-dir", "/proc/no-such-dir")),
    Case("run: --data-dir is a file",
         lambda e: ["run", "--site", str(e.site()), "--data-dir", str(e.site())],
         2, ("--data-dir", "site.toml")),
    # ---------------------------------------------------------------- demo
    Case("demo: --port in use", lambda e: demo(e, "--port", str(e.busy_port)),
         2, ("--port", "in use")),
    Case("demo: --port 99999", lambda e: demo(e, "--port", "99999"), 2, ("--port", "99999")),
    Case("demo: --port -1", lambda e: demo(e, "--port", "-1"), 2, ("--port", "-1")),
    Case("demo: --host not this machine's", lambda e: demo(e, "--port", "0", "--host", "192.0.2.1"),
         2, ("--host", "192.0.2.1")),
    Case("demo: --mqtt-url with port 99999", lambda e: demo(e, "--mqtt-url", "mqtt://127.0.0.1:99999"),
         2, ("--mqtt-url", "99999")),
    Case("demo: --interval 0", lambda e: demo(e, "--interval", "0"), 2, ("--interval", "0")),
    Case("demo: --duration -2", lambda e: demo(e, "--duration", "-2"), 2, ("--duration", "-2")),
    Case("demo: --data-dir where none can be",
         lambda e: ["demo", "--site", str(REFERENCE), "--data-dir", "/proc/no-such-dir", "--port", "0"],
         2, ("--data-dir", "/proc/no-such-dir")),
    # ---------------------------------------------------------------- store copy
    Case("copy: --start after --end",
         lambda e: copy(e, "--start", "2025-07-02", "--end", "2025-07-01"),
         2, ("--end", "after --start"), setup=with_source_store),
    Case("copy: --batch 0", lambda e: copy(e, "--batch", "0"), 2, ("--batch", "0")),
    Case("copy: --batch -5", lambda e: copy(e, "--batch", "-5"), 2, ("--batch", "-5")),
    Case("copy: a source file that does not exist",
         lambda e: copy(e, source=f"duckdb:{e.tmp / 'missing' / 'x.duckdb'}"),
         2, ("--from", "missing/x.duckdb")),
    Case("copy: the same store twice",
         lambda e: copy(e, destination=f"duckdb:{e.tmp / 'from.duckdb'}"),
         2, ("--to", "--from"), setup=with_source_store),
    Case("copy: a corrupt source",
         lambda e: copy(e, source=f"duckdb:{e.tmp / 'bad.duckdb'}"),
         2, ("bad.duckdb",), setup=garbage("bad.duckdb")),
    Case("copy: --state where none can be",
         lambda e: copy(e, "--state", "/proc/no-such-dir/s.json"),
         2, ("--state", "/proc/no-such-dir"), setup=with_source_store),
    Case("copy: --state is a directory", lambda e: copy(e, "--state", str(e.tmp)),
         2, ("--state",), setup=with_source_store),
    Case("copy: --state is not a state file",
         lambda e: copy(e, "--state", str(e.tmp / "junk.json")), 2, ("--state", "junk.json"),
         setup=junk_state),
    Case("copy: an InfluxDB URL with port 99999",
         lambda e: copy(e, destination="influx:http://127.0.0.1:99999"),
         2, ("--to", "99999"), setup=with_source_store),
    Case("copy: a store of no known kind", lambda e: copy(e, destination="sqlite:x"),
         2, ("--to", "sqlite:x")),
    Case("copy: a time that is not one", lambda e: copy(e, "--start", "garbage"),
         2, ("--start", "garbage"), setup=with_source_store),
    # ---------------------------------------------------------------- keys
    Case("keys: revoke a key that does not exist",
         lambda e: ["keys", "--site", str(e.site()), "revoke", "NOPE"], 2, ("NOPE",)),
    Case("keys: a vendor key for an unknown contract",
         lambda e: ["keys", "--site", str(e.site()), "create", "--role", "vendor", "--contract", "X"],
         2, ("--contract", "'X'")),
    Case("keys: a keys file that is not a database",
         lambda e: ["keys", "--site", str(e.site(keys=e.tmp / "keys.bin")), "list"],
         2, ("site.toml", "[api]", "keys_path"), setup=garbage("keys.bin")),
    Case("keys: a keys path that is a directory",
         lambda e: ["keys", "--site", str(e.site(keys=e.tmp)), "list"],
         2, ("site.toml", "[api]", "keys_path")),
    # ---------------------------------------------------------------- dashboards
    Case("dashboards: --out where none can be",
         lambda e: ["dashboards", "build", "--site", str(e.site()), "--out", "/proc/no-such-dir"],
         2, ("--out", "/proc/no-such-dir")),
    Case("dashboards: --out is a file",
         lambda e: ["dashboards", "build", "--site", str(e.site()), "--out", str(e.site())],
         2, ("--out", "site.toml")),
    Case("dashboards: --grafana-url that is not a URL",
         lambda e: ["dashboards", "push", "--site", str(e.site()), "--grafana-url", "nonsense"],
         2, ("--grafana-url", "nonsense")),
    Case("dashboards: --grafana-url with port 99999",
         lambda e: ["dashboards", "push", "--site", str(e.site()), "--grafana-url",
                    "http://127.0.0.1:99999"],
         2, ("--grafana-url", "99999")),
    Case("dashboards: --api-url that is not a URL",
         lambda e: ["dashboards", "push", "--site", str(e.site()), "--grafana-url",
                    "http://127.0.0.1:3000", "--api-url", "nonsense"],
         2, ("--api-url", "nonsense")),
    # ---------------------------------------------------------------- savings (the mapping)
    Case("savings: an unknown contract",
         lambda e: ["savings", "report", "--site", str(e.site()), "--contract", "NOPE",
                    "--month", "2025-08"],
         2, ("NOPE",)),
    Case("savings: a month that is not one",
         lambda e: ["savings", "report", "--site", str(e.site()), "--contract", "c",
                    "--month", "2025-13"],
         2, ("--month", "2025-13")),
    # ---------------------------------------------------------------- site files (already one line)
    Case("check-config: no such file", lambda e: ["check-config", str(e.tmp / "none.toml")],
         2, ("none.toml", "No such file")),
    Case("check-config: a directory", lambda e: ["check-config", str(e.tmp)], 2, ("needs portfolio.toml",)),
    Case("check-config: a bad reference",
         lambda e: ["check-config", str(e.tmp / "site.toml")],
         2, ("site.toml", "meter 'E-1'", "modbus.gateway", "gw9"), setup=bad_reference),
    Case("no command", lambda e: [], 2, ("COMMAND",)),
    Case("an unknown command", lambda e: ["bogus"], 2, ("bogus",)),
]  # fmt: skip


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def epcmon(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "epcmon.cli", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_user_error_is_one_line_and_exit_code_2(case: Case, tmp_path: Path, busy_port: int):
    env = Env(tmp_path, busy_port)
    case.setup(env)
    argv = case.argv(env)
    done = epcmon(argv, tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    shown = f"epcmon {' '.join(argv)}\nexit {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr + done.stdout, shown
    assert len(lines) == 1, shown
    assert done.returncode == case.code, shown
    for fragment in case.says:
        assert fragment.format(busy=busy_port) in lines[0], shown


def test_store_copy_does_not_create_a_missing_source(tmp_path: Path):
    missing = tmp_path / "missing" / "x.duckdb"
    done = epcmon(copy(Env(tmp_path, 0), source=f"duckdb:{missing}"), tmp_path)
    assert done.returncode == 2, done.stderr
    assert not missing.parent.exists()


def test_a_refused_history_writes_nothing(tmp_path: Path):
    out = tmp_path / "h.csv"
    done = epcmon(history(Env(tmp_path, 0), frm="2025-07-02", to="2025-07-01"), tmp_path)
    assert done.returncode == 2, done.stderr
    assert not out.exists()


def test_an_unexpected_error_is_one_line_with_a_hint_and_exit_code_1(capsys):
    from epcmon.cli import run_command

    def broken() -> int:
        return {}["no such key"]  # type: ignore[no-any-return]

    assert run_command(broken, verbose=False) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "KeyError" in err
    assert "'no such key'" in err
    assert "run with -v for the traceback" in err
    assert "Traceback" not in err


def test_with_v_an_unexpected_error_shows_its_traceback(capsys):
    from epcmon.cli import run_command

    def broken() -> int:
        raise RuntimeError("first line\nsecond line")

    assert run_command(broken, verbose=True) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "in broken" in err
    assert err.rstrip().splitlines()[-1] == "error: RuntimeError: first line second line"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("ConfigError", 2),
        ("NotFound", 2),
        ("StoreUnavailable", 2),
        ("InsufficientData", 1),
        ("DeviceTimeout", 1),
        ("SpoolFull", 1),
    ],
)
def test_the_error_tree_maps_to_exit_codes_in_one_place(error: str, code: int, capsys):
    import core.errors
    from epcmon.cli import run_command

    def failing() -> int:
        raise getattr(core.errors, error)("what went wrong")

    assert run_command(failing, verbose=False) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "what went wrong" in err


def test_interrupted_by_ctrl_c_exits_130_without_a_traceback(capsys):
    from epcmon.cli import run_command

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_command(interrupted, verbose=False) == 130
    assert capsys.readouterr().err == "interrupted\n"
