"""The `epcmon` command: its parser, every command and option in the order `--help` lists
them, and `main()`.

Options are checked when they are parsed (`epcmon.cli_options`). The commands are in
`epcmon.commands`, `epcmon.savings_cli`, `epcmon.bills_cli` and `epcmon.report_cli`; what a
command raises is turned into one line and an exit code in one place
(`epcmon.exit_codes.run_command`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from epcmon import cli_options as options
from epcmon import commands
from epcmon.exit_codes import run_command

__all__ = ["DEFAULT_SITE", "build_parser", "main", "run_command"]

DEFAULT_SITE = "sites/luan-admin-center.toml"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("epcmon")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [
        child
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for child in dict.fromkeys(action.choices.values())
    ]


def _accept_after_the_command(parser: argparse.ArgumentParser, site_help: str = "") -> None:
    """Global options after the subcommand too: `-v` everywhere (`epcmon run -v`), and a
    command's `--site` in its subcommands (`epcmon keys list --site F`). Defaults are
    suppressed below, so an option given before the subcommand is not reset by it."""
    for child in _subparsers(parser):
        child.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="log at DEBUG level (as before the command)",
        )
        if site_help and not any("--site" in a.option_strings for a in child._actions):
            child.add_argument("--site", default=argparse.SUPPRESS, help=site_help)
        own = next((a for a in child._actions if "--site" in a.option_strings), None)
        _accept_after_the_command(child, site_help if own is None else str(own.help or ""))


def build_parser() -> argparse.ArgumentParser:
    parser = options.Parser(prog="epcmon", description="The `epcmon` command.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"epcmon {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate a site file and print a summary")
    p.add_argument("file", help="the site file (TOML), or a portfolio directory")
    p.add_argument("--json", action="store_true", help="the summary (or the errors) as JSON")
    p.set_defaults(func=commands.check_config)

    p = sub.add_parser("demo", help="simulate a few meters, collect, store and serve them")
    p.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    p.add_argument("--data-dir", default="data", help="where the DuckDB file goes (default ./data)")
    p.add_argument("--host", default=None, help="API address (default: the site file's api.host)")
    p.add_argument(
        "--port",
        type=options.port,
        default=None,
        help="API port, 0 for any free one (default: api.port)",
    )
    p.add_argument(
        "--interval",
        type=options.poll_interval,
        default=5,
        help="poll/publish interval in seconds (default 5)",
    )
    p.add_argument(
        "--duration", type=options.positive_float, default=None, help="stop after this many seconds"
    )
    p.add_argument("--mqtt-url", default=None, help="use this broker instead of an embedded one")
    p.add_argument(
        "--city",
        type=options.positive_int,
        nargs="?",
        const=8,
        default=None,
        metavar="SITES",
        help="the simulated city instead: a portfolio of SITES sites (default 8) built on --site",
    )
    p.set_defaults(func=commands.demo)

    def service_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--site",
            default=DEFAULT_SITE,
            help=f"site file, or a portfolio directory (default {DEFAULT_SITE})",
        )
        p.add_argument(
            "--data-dir", default="data", help="dead letters and other state (default ./data)"
        )
        p.add_argument(
            "--shard",
            type=options.shard,
            default="1/1",
            help="poll the i-th of n shares of the gateways (default 1/1)",
        )

    p = sub.add_parser(
        "collect", help="run the collectors alone (Modbus polling, MQTT subscription)"
    )
    service_options(p)
    p.set_defaults(func=commands.run, role="collector")

    p = sub.add_parser("run", help="run the service: collectors, scheduled jobs and API")
    service_options(p)
    p.add_argument(
        "--role",
        choices=["all", "collector", "api", "web", "worker"],
        default="all",
        help="which parts this process runs: all (default); collector (several: --shard i/n); "
        "web (the API alone, several on one port with [api] reuse_port); worker (the "
        "scheduled jobs: recompute, alarms, reports; exactly one per deployment); api (web "
        "and worker)",
    )
    p.set_defaults(func=commands.run)

    p = sub.add_parser("dashboards", help="Grafana dashboards as code: build the files, push them")
    dash = p.add_subparsers(dest="dashboards_command", required=True, metavar="DASHBOARDS_COMMAND")
    d = dash.add_parser("build", help="write dashboards JSON and provisioning YAML")
    d.add_argument(
        "--site",
        default=DEFAULT_SITE,
        help="site file, or a portfolio directory (its overview and every site's dashboards)",
    )
    d.add_argument("--out", default="deploy/grafana", help="output folder (default deploy/grafana)")
    d.add_argument(
        "--influx-url",
        type=options.optional_http_url,
        default="",
        help="InfluxDB as Grafana reaches it (default: storage.influx.url)",
    )
    d.add_argument(
        "--api-url",
        type=options.optional_http_url,
        default="",
        help="the epcmon API as Grafana reaches it (default: api.host and api.port)",
    )
    d.set_defaults(func=commands.dashboards)
    d = dash.add_parser("push", help="upsert the folder, datasources and dashboards into Grafana")
    d.add_argument(
        "--site",
        default=DEFAULT_SITE,
        help="site file, or a portfolio directory (its overview and every site's dashboards)",
    )
    d.add_argument(
        "--grafana-url", type=options.http_url, required=True, help="e.g. http://127.0.0.1:3000"
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
        type=options.optional_http_url,
        default="",
        help="InfluxDB as Grafana reaches it",
    )
    d.add_argument(
        "--api-url",
        type=options.optional_http_url,
        default="",
        help="the epcmon API as Grafana reaches it",
    )
    d.set_defaults(func=commands.dashboards)

    p = sub.add_parser("store", help="operate on time-series stores")
    store_sub = p.add_subparsers(dest="store_command", required=True, metavar="STORE_COMMAND")
    c = store_sub.add_parser(
        "copy",
        help="copy history from one store to another (e.g. DuckDB to InfluxDB), resumably",
        description="Copy every series of one store into another in large batches, "
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
        "--batch",
        type=options.positive_int,
        default=100_000,
        help="points per write, across series (default 100000)",
    )
    c.add_argument(
        "--state",
        default="epcmon-store-copy.json",
        help="where progress is kept, to resume (default ./epcmon-store-copy.json)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=commands.store_copy)

    p = sub.add_parser("keys", help="create, revoke and list API keys")
    p.add_argument(
        "--site",
        default=DEFAULT_SITE,
        help=f"site file or portfolio directory (default {DEFAULT_SITE}): where the keys live",
    )
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    k = keys_sub.add_parser("create", help="create a key and print it once")
    k.add_argument("--role", required=True, choices=["admin", "engineer", "viewer", "vendor"])
    k.add_argument(
        "--contract", action="append", help="a contract a vendor key may see (repeatable)"
    )
    k.add_argument(
        "--scope-site",
        action="append",
        metavar="SITE",
        help="in a portfolio: a site an admin/engineer/viewer key may see (repeatable; "
        "default: every site)",
    )
    k.add_argument("--name", default="", help="who or what the key is for")
    k.set_defaults(func=commands.keys)
    k = keys_sub.add_parser("revoke", help="revoke a key by its id")
    k.add_argument("key_id")
    k.set_defaults(func=commands.keys)
    k = keys_sub.add_parser("list", help="list keys (ids, roles, contracts; never the keys)")
    k.add_argument("--json", action="store_true", help="as a JSON array")
    k.set_defaults(func=commands.keys)

    from epcmon.savings_cli import add_commands

    add_commands(sub)

    from epcmon.bills_cli import add_commands as add_bills_commands

    add_bills_commands(sub)

    from epcmon.report_cli import add_commands as add_report_commands

    add_report_commands(sub)

    p = sub.add_parser("simulate", help="the virtual site: write its history, or serve its meters")
    sim = p.add_subparsers(dest="simulate_command", required=True, metavar="WHAT")
    c = sim.add_parser(
        "city", help="write a simulated city: portfolio.toml and one site file per institution"
    )
    c.add_argument("--out", required=True, help="directory to write (must be empty, or --force)")
    c.add_argument(
        "--sites",
        type=options.positive_int,
        default=8,
        help="how many sites: the reference site, seven county/district centers, then small "
        "institutions (default 8)",
    )
    c.add_argument("--seed", type=options.non_negative_int, default=0, help="default 0")
    c.add_argument(
        "--reference",
        default=DEFAULT_SITE,
        help=f"the administrative center's site file, copied as it is (default {DEFAULT_SITE})",
    )
    c.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty directory (replacing its .toml files)",
    )
    c.set_defaults(func=commands.simulate_city)
    h = sim.add_parser("history", help="write the site's readings over a date range")
    h.add_argument(
        "--site",
        default=DEFAULT_SITE,
        help=f"site file, or a portfolio directory: every site into its one store "
        f"(default {DEFAULT_SITE})",
    )
    h.add_argument("--from", dest="start", required=True, help="first day (local) or ISO time")
    h.add_argument("--to", dest="end", required=True, help="day after the last (local) or ISO time")
    h.add_argument(
        "--interval",
        type=options.history_interval,
        default="15m",
        help="1m, 5m, 15m, 30m or 1h (default 15m)",
    )
    h.add_argument(
        "--seed",
        type=options.non_negative_int,
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
        help="a .duckdb store, a .csv or a .parquet file (default: the site's or portfolio's store)",
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
    h.add_argument(
        "--boundary",
        action="store_true",
        help="only the meters the contracts need: their boundary meters and weather stations",
    )
    h.add_argument("--no-progress", action="store_true", help="no progress bar")
    h.set_defaults(func=commands.simulate_history)
    v = sim.add_parser("serve", help="run the site's Modbus gateways and MQTT meters on loopback")
    v.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    v.add_argument(
        "--seed",
        type=options.non_negative_int,
        default=None,
        help="default: the site file's [simulation] seed",
    )
    v.add_argument(
        "--speed",
        type=options.speed,
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
        "--duration", type=options.positive_float, default=None, help="stop after this many seconds"
    )
    v.set_defaults(func=commands.simulate_serve)
    _accept_after_the_command(parser)
    return parser


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
