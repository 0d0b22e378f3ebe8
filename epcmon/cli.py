"""The `epcmon` command.

What a command raises is turned into an exit code in one place (`run_command`): a user error
(the site file, an option, a file or port named by either, a meter or contract that does not
exist, a store that cannot be opened) is one line on stderr and exit code 2; any other epcmon
error is one line and exit code 1; anything unexpected is one line with a hint, exit code 1,
and its traceback with `-v`. Options are checked when they are parsed, so argparse reports
them (one line, naming the option) before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from core.errors import ConfigError, EpcmonError, NotFound, StoreUnavailable

if TYPE_CHECKING:
    from api.keys import KeyStore
    from core.config import SiteConfig

DEFAULT_SITE = "sites/luan-admin-center.toml"


# ------------------------------------------------------------------ option types
# Each returns the parsed value or raises ArgumentTypeError, which argparse reports as
# "epcmon CMD: error: argument --OPTION: <message>".


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number above 0")
    return value


def _poll_interval(text: str) -> int:
    value = _positive_int(text)
    if value > 86_400:  # the site file's poll_interval_s bound
        raise argparse.ArgumentTypeError(f"{text!r}: at most 86400 seconds")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535, 0: any free one)")
    return value


def _speed(text: str) -> float:
    value = _positive_float(text)
    if value > 1_000_000:  # the site file's [simulation] acceleration bound
        raise argparse.ArgumentTypeError(f"{text!r}: at most 1000000 simulated seconds per second")
    return value


def _shard(text: str) -> str:
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n, e.g. 1/2") from None
    if n < 1 or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n with 1 <= i <= n, e.g. 2/2")
    return text


def _history_interval(text: str) -> str:
    from simulators.history import INTERVALS

    if text not in INTERVALS:
        *most, last = INTERVALS
        raise argparse.ArgumentTypeError(f"{text!r}: one of {', '.join(most)} or {last}")
    return text


def _http_url(text: str) -> str:
    from urllib.parse import urlsplit

    from core.net import http_port

    try:
        parts = urlsplit(text)
        http_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r}: expected http(s)://host[:port]")
    return text


def _optional_http_url(text: str) -> str:
    return _http_url(text) if text else text


class _Parser(argparse.ArgumentParser):
    """argparse, reporting a usage error as one line (the option and what is wrong, and where
    the help is) instead of the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------ files and directories


def _directory(text: str, flag: str) -> Path:
    """A directory the command writes into: created when missing, refused (naming `flag`)
    when it cannot be."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{text}: exists and is not a directory", key=flag) from None
    except OSError as exc:
        raise ConfigError(f"{text}: cannot create it: {exc.strerror}", key=flag) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{text}: this user cannot write in it", key=flag)
    return path


def _open_keys(site: SiteConfig) -> KeyStore:
    """The API keys file of `[api] keys_path`; one that cannot be opened is the site file's
    error."""
    import sqlite3

    from api.keys import KeyStore

    try:
        return KeyStore(site.api.keys_path)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{site.api.keys_path}: cannot open the API keys file: {reason}",
            file=site.source,
            entity="[api]",
            key="keys_path",
        ) from exc


def _in_site_file(exc: ConfigError, site: SiteConfig) -> ConfigError:
    """A ConfigError raised by a part that knows the section and key it was given but not
    the file they came from (the API server's `[api] port`): the same, naming the file."""
    if exc.file or not exc.entity:
        return exc
    return ConfigError(exc.reason, file=site.source, entity=exc.entity, key=exc.key)


def _check_config(args: argparse.Namespace) -> int:
    from epcmon.sites import load, summary

    site = load(args.file)
    print(summary(site))
    print("OK")
    return 0


def _mqtt_url(text: str | None, flag: str = "--mqtt-url") -> None:
    from core.net import parse_mqtt_url

    if text:
        try:
            parse_mqtt_url(text)
        except ValueError as exc:
            raise ConfigError(str(exc), key=flag) from None


def _demo(args: argparse.Namespace) -> int:
    from epcmon.demo import DemoOptions, run_demo
    from epcmon.sites import load

    site = load(args.site)
    _mqtt_url(args.mqtt_url)
    opts = DemoOptions(
        site_file=Path(args.site),
        data_dir=_directory(args.data_dir, "--data-dir"),
        host=args.host,
        port=args.port,
        interval_s=args.interval,
        duration_s=args.duration,
        mqtt_url=args.mqtt_url,
    )
    asyncio.run(run_demo(site, opts))
    return 0


def _run(args: argparse.Namespace) -> int:
    from epcmon.runtime import Role, Shard, run_service
    from epcmon.sites import load

    site = load(args.site)
    role: Role = args.role
    data_dir = _directory(args.data_dir, "--data-dir")
    if role in ("all", "api"):
        _open_keys(site).close()  # before anything starts: a bad keys file is the site's error
    try:
        asyncio.run(run_service(site, role=role, shard=Shard.parse(args.shard), data_dir=data_dir))
    except ConfigError as exc:
        raise _in_site_file(exc, site) from exc
    return 0


def _dashboards(args: argparse.Namespace) -> int:
    import os

    from epcmon.sites import load

    try:
        from dashboards.grafana.provisioning import default_api_url, write
        from dashboards.grafana.push import push
    except ImportError as exc:  # the optional extra
        raise ConfigError(
            f"the dashboards need the `dashboards` extra (pip install 'epcmon[dashboards]'): {exc}"
        ) from exc
    site = load(args.site)
    if args.dashboards_command == "build":
        try:
            written = write(site, Path(args.out))
        except OSError as exc:
            raise ConfigError(
                f"{args.out}: cannot write {exc.filename or 'there'}: {exc.strerror}", key="--out"
            ) from exc
        for path in written:
            print(path)
        return 0
    from dashboards.grafana.client import GrafanaClient

    token = os.environ.get(args.token_env, "")
    if not token:
        raise ConfigError(f"set {args.token_env} to a Grafana service-account token")
    key = os.environ.get(args.viewer_key_env, "")
    if not key:
        raise ConfigError(
            f"set {args.viewer_key_env} to a viewer API key (epcmon keys create --role viewer)"
        )
    with GrafanaClient(args.grafana_url, token) as client:
        urls = push(
            client,
            site,
            influx_url=args.influx_url or site.storage.influx.url,
            api_url=args.api_url or default_api_url(site),
            viewer_key=key,
            influx_password=os.environ.get("EPCMON_INFLUX_PASSWORD", ""),
        )
    for url in urls:
        print(args.grafana_url.rstrip("/") + url)
    return 0


def _store_copy(args: argparse.Namespace) -> int:
    from epcmon.store_copy import run_copy

    return run_copy(args)


def _keys(args: argparse.Namespace) -> int:
    from api.keys import Role
    from epcmon.sites import load

    site = load(args.site)
    keys = _open_keys(site)
    try:
        if args.keys_command == "create":
            contracts = tuple(args.contract or ())
            known = {c.id for c in site.contracts}
            for c in contracts:
                if c not in known:
                    raise ConfigError(f"no contract {c!r} in {site.source}", key="--contract")
            key_id, key = keys.create(Role(args.role), contracts=contracts, name=args.name)
            print(
                f"key id {key_id} ({args.role}{', contracts ' + ', '.join(contracts) if contracts else ''})"
            )
            print(key)
            print("This is the only time the key is shown: store it now.", file=sys.stderr)
        elif args.keys_command == "revoke":
            keys.revoke(args.key_id)
            print(f"revoked {args.key_id}")
        else:
            for k in keys.list():
                state = "revoked" if k.revoked_ms else "active"
                print(
                    f"{k.key_id}  {k.role.value:8s}  {state:7s}  {','.join(k.contracts) or '-':20s}  {k.name}"
                )
    finally:
        keys.close()
    return 0


def _simulate_history(args: argparse.Namespace) -> int:
    from epcmon.simulate import HistoryOptions, run_history
    from epcmon.sites import load

    site = load(args.site)
    meters = tuple(m.strip() for m in (args.meters or "").split(",") if m.strip())
    if args.meters is not None and not meters:
        raise ConfigError(f"{args.meters!r} names no meter", key="--meters")
    opts = HistoryOptions(
        start=args.start,
        end=args.end,
        interval=args.interval,
        seed=args.seed,
        quantities=args.quantities,
        meters=meters,
        out=args.out,
        truth=args.truth,
        faults=tuple(args.fault or ()),
        progress=not args.no_progress,
    )
    return run_history(site, opts)


def _simulate_serve(args: argparse.Namespace) -> int:
    from epcmon.simulate import ServeArgs, run_serve
    from epcmon.sites import load

    site = load(args.site)
    _mqtt_url(args.mqtt_url)
    opts = ServeArgs(
        seed=args.seed,
        speed=args.speed,
        start=args.start,
        any_port=args.any_port,
        mqtt_url=args.mqtt_url,
        faults=tuple(args.fault or ()),
        duration_s=args.duration,
    )
    return asyncio.run(run_serve(site, opts))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="epcmon", description="The `epcmon` command.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate a site file and print a summary")
    p.add_argument("file", help="the site file (TOML)")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("demo", help="simulate a few meters, collect, store and serve them")
    p.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    p.add_argument("--data-dir", default="data", help="where the DuckDB file goes (default ./data)")
    p.add_argument("--host", default=None, help="API address (default: the site file's api.host)")
    p.add_argument(
        "--port", type=_port, default=None, help="API port, 0 for any free one (default: api.port)"
    )
    p.add_argument(
        "--interval",
        type=_poll_interval,
        default=5,
        help="poll/publish interval in seconds (default 5)",
    )
    p.add_argument(
        "--duration", type=_positive_float, default=None, help="stop after this many seconds"
    )
    p.add_argument("--mqtt-url", default=None, help="use this broker instead of an embedded one")
    p.set_defaults(func=_demo)

    def service_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
        p.add_argument(
            "--data-dir", default="data", help="dead letters and other state (default ./data)"
        )
        p.add_argument(
            "--shard",
            type=_shard,
            default="1/1",
            help="poll the i-th of n shares of the gateways (default 1/1)",
        )

    p = sub.add_parser(
        "collect", help="run the collectors alone (Modbus polling, MQTT subscription)"
    )
    service_options(p)
    p.set_defaults(func=_run, role="collector")

    p = sub.add_parser("run", help="run the service: collectors and API")
    service_options(p)
    p.add_argument(
        "--role",
        choices=["all", "collector", "api"],
        default="all",
        help="which parts this process runs (default all)",
    )
    p.set_defaults(func=_run)

    p = sub.add_parser("dashboards", help="Grafana dashboards as code: build the files, push them")
    dash = p.add_subparsers(dest="dashboards_command", required=True, metavar="DASHBOARDS_COMMAND")
    d = dash.add_parser("build", help="write dashboards JSON and provisioning YAML")
    d.add_argument("--site", default=DEFAULT_SITE)
    d.add_argument("--out", default="deploy/grafana", help="output folder (default deploy/grafana)")
    d.set_defaults(func=_dashboards)
    d = dash.add_parser("push", help="upsert the folder, datasources and dashboards into Grafana")
    d.add_argument("--site", default=DEFAULT_SITE)
    d.add_argument(
        "--grafana-url", type=_http_url, required=True, help="e.g. http://127.0.0.1:3000"
    )
    d.add_argument(
        "--token-env", default="GRAFANA_TOKEN", help="env var holding a service-account token"
    )
    d.add_argument(
        "--viewer-key-env",
        default="EPCMON_VIEWER_KEY",
        help="env var holding the viewer API key the Infinity datasource sends",
    )
    d.add_argument(
        "--influx-url",
        type=_optional_http_url,
        default="",
        help="InfluxDB as Grafana reaches it",
    )
    d.add_argument(
        "--api-url",
        type=_optional_http_url,
        default="",
        help="the epcmon API as Grafana reaches it",
    )
    d.set_defaults(func=_dashboards)

    p = sub.add_parser("store", help="operate on time-series stores")
    store_sub = p.add_subparsers(dest="store_command", required=True, metavar="STORE_COMMAND")
    c = store_sub.add_parser(
        "copy",
        help="copy history from one store to another (e.g. DuckDB to InfluxDB), resumably",
        description="Copy every series of one store into another, month by month in batches, "
        "with a progress bar. Interrupted, it resumes where it stopped (--state). Secrets come "
        "from EPCMON_INFLUX_TOKEN / EPCMON_INFLUX_PASSWORD.",
    )
    c.add_argument("--from", dest="source", required=True, help="duckdb:PATH or influx:URL")
    c.add_argument("--to", dest="destination", required=True, help="influx:URL or duckdb:PATH")
    c.add_argument(
        "--site",
        default=None,
        help="site file: meter tags for InfluxDB and the defaults of [storage.influx]",
    )
    c.add_argument("--mode", choices=["v1", "v2", "v3"], help="InfluxDB API (default: site file)")
    c.add_argument("--database", help="InfluxDB database (v1 writes, all reads)")
    c.add_argument("--retention-policy", help="InfluxDB retention policy")
    c.add_argument("--org", help="InfluxDB 2.x organisation")
    c.add_argument("--bucket", help="InfluxDB 2.x/3.x bucket")
    c.add_argument("--username", help="InfluxDB 1.x user (password: EPCMON_INFLUX_PASSWORD)")
    c.add_argument("--precision", choices=["ms", "s"], help="timestamp precision written")
    c.add_argument("--start", help="copy from this UTC time (ISO 8601; default: all history)")
    c.add_argument("--end", help="copy until this UTC time, exclusive (default: all history)")
    c.add_argument(
        "--batch", type=_positive_int, default=50_000, help="points per write (default 50000)"
    )
    c.add_argument(
        "--state",
        default="epcmon-store-copy.json",
        help="where progress is kept, to resume (default ./epcmon-store-copy.json)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_store_copy)

    p = sub.add_parser("keys", help="create, revoke and list API keys")
    p.add_argument(
        "--site",
        default=DEFAULT_SITE,
        help=f"site file (default {DEFAULT_SITE}): where the keys live",
    )
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    k = keys_sub.add_parser("create", help="create a key and print it once")
    k.add_argument("--role", required=True, choices=["admin", "engineer", "viewer", "vendor"])
    k.add_argument(
        "--contract", action="append", help="a contract a vendor key may see (repeatable)"
    )
    k.add_argument("--name", default="", help="who or what the key is for")
    k.set_defaults(func=_keys)
    k = keys_sub.add_parser("revoke", help="revoke a key by its id")
    k.add_argument("key_id")
    k.set_defaults(func=_keys)
    k = keys_sub.add_parser("list", help="list keys (ids, roles, contracts; never the keys)")
    k.set_defaults(func=_keys)

    from epcmon.savings_cli import add_commands

    add_commands(sub)

    from epcmon.bills_cli import add_commands as add_bills_commands

    add_bills_commands(sub)

    from epcmon.report_cli import add_commands as add_report_commands

    add_report_commands(sub)

    p = sub.add_parser("simulate", help="the virtual site: write its history, or serve its meters")
    sim = p.add_subparsers(dest="simulate_command", required=True, metavar="WHAT")
    h = sim.add_parser("history", help="write the site's readings over a date range")
    h.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    h.add_argument("--from", dest="start", required=True, help="first day (local) or ISO time")
    h.add_argument("--to", dest="end", required=True, help="day after the last (local) or ISO time")
    h.add_argument(
        "--interval",
        type=_history_interval,
        default="15m",
        help="1m, 5m, 15m, 30m or 1h (default 15m)",
    )
    h.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="default: the site file's [simulation] seed",
    )
    h.add_argument(
        "--quantities",
        choices=("core", "all"),
        default="core",
        help="core: counters and their rates, weather (default); all: every register",
    )
    h.add_argument("--meters", default=None, help="comma-separated meter ids (default: all)")
    h.add_argument(
        "--out",
        default=None,
        help="a .duckdb store, a .csv or a .parquet file (default: the site's store)",
    )
    h.add_argument(
        "--truth",
        default=None,
        help="also write actual, counterfactual and true savings per interval (.csv/.parquet)",
    )
    h.add_argument(
        "--fault",
        action="append",
        metavar="METER:KEY=VALUE,...",
        help="inject a fault as a collector would have stored it (repeatable)",
    )
    h.add_argument("--no-progress", action="store_true", help="no progress bar")
    h.set_defaults(func=_simulate_history)
    v = sim.add_parser("serve", help="run the site's Modbus gateways and MQTT meters on loopback")
    v.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    v.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="default: the site file's [simulation] seed",
    )
    v.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="simulated seconds per second (default: [simulation] acceleration, 1)",
    )
    v.add_argument(
        "--start", default=None, help="simulated start time, ISO with offset (default: now)"
    )
    v.add_argument(
        "--any-port",
        action="store_true",
        help="free ports instead of the site file's gateway ports",
    )
    v.add_argument(
        "--mqtt-url",
        default=None,
        help="publish to this broker (default: [mqtt] url, else an embedded one)",
    )
    v.add_argument(
        "--fault",
        action="append",
        metavar="METER:KEY=VALUE,...",
        help="inject a fault, e.g. E-D01:busy_rate=0.2 or W-MAIN:offline (repeatable)",
    )
    v.add_argument(
        "--duration", type=_positive_float, default=None, help="stop after this many seconds"
    )
    v.set_defaults(func=_simulate_serve)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(code: int, line: str) -> int:
    print(line, file=sys.stderr)
    return code


def run_command(command: Callable[[], int], *, verbose: bool) -> int:
    """Run `command` and map what it raises to one line on stderr and an exit code:

    - 2, a user error: `ConfigError` (the site file: file, entity and key; an option: the
      option), `NotFound` (a meter, contract or key the user named), `StoreUnavailable` (the
      store cannot be opened: a corrupt or locked file, a server that cannot be reached), and
      an `OSError` about a file (a path the user gave: missing, a directory, unwritable);
    - 1, any other `EpcmonError` (the meters', the data's), or an unexpected exception: one
      line with its type and a hint, and its traceback with -v;
    - 130, Ctrl-C.
    """
    try:
        return command()
    except ConfigError as exc:
        # a bad site file lists every problem, one a line; everything else is one line
        return _fail(2, f"configuration error: {exc}" if exc.file else f"error: {exc}")
    except (NotFound, StoreUnavailable) as exc:
        return _fail(2, f"error: {_one_line(str(exc))}")
    except EpcmonError as exc:
        return _fail(1, f"error: {_one_line(str(exc))}")
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except Exception as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            return _fail(2, f"error: {exc.filename}: {exc.strerror or _one_line(str(exc))}")
        if verbose:
            traceback.print_exc()
        line = f"error: {type(exc).__name__}: {_one_line(str(exc))}"
        return _fail(1, line if verbose else f"{line} (run with -v for the traceback)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in (
        "amqtt",
        "pymodbus",
        "transitions",
        "httpx",
        "httpcore",
        "matplotlib",
        "PIL",
        "fontTools",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_command(lambda: int(args.func(args)), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
