"""The `epcmon` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from core.errors import ConfigError, EpcmonError

DEFAULT_SITE = "sites/luan-admin-center.toml"


def _check_config(args: argparse.Namespace) -> int:
    from epcmon.sites import load, summary

    site = load(args.file)
    print(summary(site))
    print("OK")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from epcmon.demo import DemoOptions, run_demo
    from epcmon.sites import load

    site = load(args.site)
    opts = DemoOptions(
        site_file=Path(args.site),
        data_dir=Path(args.data_dir),
        host=args.host,
        port=args.port,
        interval_s=args.interval,
        duration_s=args.duration,
        mqtt_url=args.mqtt_url,
    )
    asyncio.run(run_demo(site, opts))
    return 0


def _simulate_history(args: argparse.Namespace) -> int:
    from epcmon.simulate import HistoryOptions, run_history
    from epcmon.sites import load

    site = load(args.site)
    opts = HistoryOptions(
        start=args.start,
        end=args.end,
        interval=args.interval,
        seed=args.seed,
        quantities=args.quantities,
        meters=tuple(m for m in (args.meters or "").split(",") if m),
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
    parser = argparse.ArgumentParser(prog="epcmon", description=__doc__)
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
        "--port", type=int, default=None, help="API port, 0 for any free one (default: api.port)"
    )
    p.add_argument(
        "--interval", type=int, default=5, help="poll/publish interval in seconds (default 5)"
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--mqtt-url", default=None, help="use this broker instead of an embedded one")
    p.set_defaults(func=_demo)

    p = sub.add_parser("simulate", help="the virtual site: write its history, or serve its meters")
    sim = p.add_subparsers(dest="simulate_command", required=True, metavar="WHAT")
    h = sim.add_parser("history", help="write the site's readings over a date range")
    h.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    h.add_argument("--from", dest="start", required=True, help="first day (local) or ISO time")
    h.add_argument("--to", dest="end", required=True, help="day after the last (local) or ISO time")
    h.add_argument("--interval", default="15m", help="1m, 5m, 15m, 30m or 1h (default 15m)")
    h.add_argument(
        "--seed", type=int, default=None, help="default: the site file's [simulation] seed"
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
        "--seed", type=int, default=None, help="default: the site file's [simulation] seed"
    )
    v.add_argument(
        "--speed",
        type=float,
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
    v.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    v.set_defaults(func=_simulate_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("amqtt", "pymodbus", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except EpcmonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
