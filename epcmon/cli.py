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

    from epcmon.savings_cli import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("amqtt", "pymodbus", "transitions", "matplotlib", "PIL"):
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
