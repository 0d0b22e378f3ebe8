"""What the commands `cli.build_parser()` registers itself do: check-config, demo, collect
and run, dashboards, store copy, keys, simulate (savings, baseline, bills and report are in
`epcmon.savings_cli`, `epcmon.bills_cli` and `epcmon.report_cli`).

Each takes the parsed arguments and returns the exit code, raising what
`epcmon.exit_codes.run_command` turns into one line; each imports what it needs when it
runs, so that `epcmon --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from api.keys import KeyStore
    from core.config import SiteConfig
    from epcmon.runtime import Role


# ------------------------------------------------------------------ checks of what the user named


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


def _mqtt_url(text: str | None, flag: str = "--mqtt-url") -> None:
    """A broker URL the user gave that cannot be used is that option's error."""
    from core.net import parse_mqtt_url

    if text:
        try:
            parse_mqtt_url(text)
        except ValueError as exc:
            raise ConfigError(str(exc), key=flag) from None


# ------------------------------------------------------------------ the commands


def check_config(args: argparse.Namespace) -> int:
    from epcmon.sites import is_portfolio, load, load_portfolio, summary, summary_dict

    portfolio = is_portfolio(args.file)
    if not getattr(args, "json", False):
        if portfolio:
            p = load_portfolio(args.file)
            print(f"portfolio {p.info.id}: {p.info.name}, {len(p.sites)} sites, {p.meters} meters")
            for site in p.sites:
                print(summary(site))
        else:
            print(summary(load(args.file)))
        print("OK")
        return 0
    try:
        sites = load_portfolio(args.file).sites if portfolio else (load(args.file),)
    except ConfigError as exc:  # the same exit code, and the problems as data
        problems = [line for line in str(exc).splitlines() if line.strip()]
        _print_json({"ok": False, "file": exc.file or args.file, "errors": problems})
        return 2
    if portfolio:
        _print_json({"ok": True, "sites": [summary_dict(s) for s in sites]})
    else:
        _print_json({"ok": True, **summary_dict(sites[0])})
    return 0


def _print_json(doc: object) -> None:
    import json

    print(json.dumps(doc, ensure_ascii=False, indent=1))


def demo(args: argparse.Namespace) -> int:
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
    if getattr(args, "city", None):
        from epcmon.demo_city import run_city_demo

        asyncio.run(run_city_demo(opts, args.city))
        return 0
    asyncio.run(run_demo(site, opts))
    return 0


def run(args: argparse.Namespace) -> int:
    from epcmon.collecting import Shard
    from epcmon.runtime import run_service
    from epcmon.sites import is_portfolio, load

    role: Role = args.role
    data_dir = _directory(args.data_dir, "--data-dir")
    if is_portfolio(args.site):
        return _run_portfolio(args, role, data_dir)
    site = load(args.site)
    # before anything starts: a bad keys file is the site's error (a collector's /metrics
    # takes the API's keys too)
    _open_keys(site).close()
    try:
        asyncio.run(run_service(site, role=role, shard=Shard.parse(args.shard), data_dir=data_dir))
    except ConfigError as exc:
        raise _in_site_file(exc, site) from exc
    return 0


def _run_portfolio(args: argparse.Namespace, role: Role, data_dir: Path) -> int:
    from epcmon.collecting import Shard
    from epcmon.portfolio_runtime import run_portfolio
    from epcmon.sites import load_portfolio

    portfolio = load_portfolio(args.site)
    _open_keys(portfolio.sites[0]).close()  # a bad keys file is a user error before anything runs
    asyncio.run(
        run_portfolio(portfolio, role=role, shard=Shard.parse(args.shard), data_dir=data_dir)
    )
    return 0


def dashboards(args: argparse.Namespace) -> int:
    from core.config import Portfolio
    from epcmon.sites import is_portfolio, load, load_portfolio

    try:
        from dashboards.grafana.provisioning import default_api_url, write
        from dashboards.grafana.push import push
    except ImportError as exc:  # the optional extra
        raise ConfigError(
            f"the dashboards need the `dashboards` extra (pip install 'epcmon[dashboards]'): {exc}"
        ) from exc
    target = load_portfolio(args.site) if is_portfolio(args.site) else load(args.site)
    site = target.sites[0] if isinstance(target, Portfolio) else target  # its store and API
    if args.dashboards_command == "build":
        try:
            written = write(
                target,
                Path(args.out),
                api_url=args.api_url or None,
                influx_url=args.influx_url or None,
            )
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
            target,
            influx_url=args.influx_url or site.storage.influx.url,
            api_url=args.api_url or default_api_url(site),
            viewer_key=key,
            influx_token=os.environ.get("EPCMON_INFLUX_TOKEN", ""),
            influx_password=os.environ.get("EPCMON_INFLUX_PASSWORD", ""),
        )
    for url in urls:
        print(args.grafana_url.rstrip("/") + url)
    return 0


def store_copy(args: argparse.Namespace) -> int:
    from epcmon.store_copy import run_copy

    return run_copy(args)


def keys(args: argparse.Namespace) -> int:
    from api.keys import Role
    from epcmon.sites import is_portfolio, load, load_portfolio

    sites = load_portfolio(args.site).sites if is_portfolio(args.site) else (load(args.site),)
    site = sites[0]  # a portfolio's sites share its [api] keys_path
    keys = _open_keys(site)
    try:
        if args.keys_command == "create":
            contracts = tuple(args.contract or ())
            known = {c.id for s in sites for c in s.contracts}
            for c in contracts:
                if c not in known:
                    raise ConfigError(f"no contract {c!r} in {args.site}", key="--contract")
            scope = tuple(getattr(args, "scope_site", None) or ())
            site_ids = {s.site.id for s in sites}
            for sid in scope:
                if sid not in site_ids:
                    known_ids = ", ".join(sorted(site_ids))
                    raise ConfigError(
                        f"no site {sid!r} in {args.site} (known: {known_ids})", key="--scope-site"
                    )
            key_id, key = keys.create(
                Role(args.role), contracts=contracts, name=args.name, sites=scope
            )
            print(
                f"key id {key_id} ({args.role}"
                + (f", contracts {', '.join(contracts)}" if contracts else "")
                + (f", sites {', '.join(scope)}" if scope else "")
                + ")"
            )
            print(key)
            print("This is the only time the key is shown: store it now.", file=sys.stderr)
        elif args.keys_command == "revoke":
            keys.revoke(args.key_id)
            print(f"revoked {args.key_id}")
        elif getattr(args, "json", False):
            _print_json(
                [
                    {
                        "id": k.key_id,
                        "role": k.role.value,
                        "state": "revoked" if k.revoked_ms else "active",
                        "contracts": list(k.contracts),
                        "sites": list(k.sites),
                        "name": k.name,
                        "created_ms": k.created_ms,
                        "revoked_ms": k.revoked_ms,
                    }
                    for k in keys.list()
                ]
            )
        else:
            for k in keys.list():
                state = "revoked" if k.revoked_ms else "active"
                shown = ",".join(k.contracts) or ",".join(f"site:{s}" for s in k.sites) or "-"
                print(f"{k.key_id}  {k.role.value:8s}  {state:7s}  {shown:20s}  {k.name}")
    finally:
        keys.close()
    return 0


def simulate_city(args: argparse.Namespace) -> int:
    from epcmon.simulate_city import run_city

    return run_city(args.out, args.sites, args.seed, reference=args.reference, force=args.force)


def simulate_history(args: argparse.Namespace) -> int:
    from epcmon.simulate import HistoryOptions, run_history
    from epcmon.sites import load

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
    if args.boundary and meters:
        raise ConfigError("not with --boundary (it chooses the meters)", key="--meters")
    if Path(args.site).is_dir():
        from epcmon.simulate_city import run_portfolio_history

        return run_portfolio_history(args.site, opts, boundary=args.boundary)
    site = load(args.site)
    if args.boundary:
        from dataclasses import replace

        from epcmon.simulate_city import boundary_meters

        opts = replace(opts, meters=boundary_meters(site))
    return run_history(site, opts)


def simulate_serve(args: argparse.Namespace) -> int:
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
