"""Recompute of every site's monthly statements over a city's hourly boundary history (part 2
of bench/portfolio.py).

Both work in a deployment directory `home` (the working directory of the processes, where
the portfolio's relative paths land, as for `epcmon run`): `history(city, home)` writes the
boundary history (`epcmon simulate history --site DIR --boundary --interval 1h`: every
contract's baseline year and reporting period) into the portfolio's store;
`recompute(city, home)` runs, in a process of its own (so py-spy can record it), each site's
`processing.schedule.Recompute.run_once` into its statements file, as `epcmon run --role
worker` does on its first pass (baseline fitted and stored, every due month's final
statement, the running month's provisional), and returns the seconds per site and the
statements written.

    python -m bench.portfolio_recompute CITY_DIR TODAY   # in the deployment directory
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from bench.pyspy import Profile

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, cwd=home, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def history(city: Path, home: Path, start: str, end: str) -> float:
    """Seconds to write the city's hourly boundary history into the portfolio's store."""
    t0 = time.perf_counter()
    args = [sys.executable, "-m", "epcmon.cli", "simulate", "history", "--site", str(city)]
    args += ["--from", start, "--to", end, "--interval", "1h", "--boundary", "--no-progress"]
    _run(args, home)
    return time.perf_counter() - t0


def recompute(city: Path, home: Path, today: date, *, profile: bool) -> dict[str, Any]:
    """Every site's first recompute pass in a child process (py-spy recording it if
    `profile` and py-spy is there): {"seconds", "sites": {site: seconds}, "contracts",
    "actions": {what: n}, "profile": [(where, share)]}."""
    args = [sys.executable, "-m", "bench.portfolio_recompute", str(city), today.isoformat()]
    raw = home / "pyspy.txt"
    spy = Profile.binary() if profile else None
    if spy is not None:
        args = [spy, "record", "--format", "raw", "--rate", "50", "--output", str(raw), "--", *args]
    _run(args, home)
    result: dict[str, Any] = json.loads((home / "recompute.json").read_text())
    result["profile"] = summarise(raw.read_text()) if raw.exists() else []
    return result


def summarise(raw: str, top: int = 6) -> list[tuple[str, float]]:
    """Where the time goes: each sample named by its innermost frame in epcmon's code
    (module:function), with the library it was in below that, if any."""
    ours = ("processing/", "storage/", "core/", "baselines/", "simulators/", "epcmon/")
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        frames = stack.split(";")
        name = "(other)"
        for i in range(len(frames) - 1, -1, -1):
            frame = frames[i]
            if any(f"({p}" in frame or f"/{p}" in frame for p in ours):
                func = frame.split(" (")[0]
                where = frame.split("(")[-1].split(":")[0].rsplit("/", 2)[-2:]
                name = f"{'/'.join(where)}:{func}"
                lib = _library(frames[i + 1 :])
                if lib:
                    name += f" -> {lib}"
                break
        counts[name] += int(count)
    if total == 0:
        return []
    return [(name, n / total) for name, n in counts.most_common(top)]


def _library(frames: list[str]) -> str:
    for frame in frames:
        if "site-packages/" in frame:
            return frame.split("site-packages/")[1].split("/")[0]
    return ""


def main(argv: list[str]) -> int:
    from epcmon.sites import load_portfolio
    from processing.schedule import Recompute
    from processing.statements import StatementStore
    from storage.duckdb_store import DuckDBStore
    from storage.scoped import SiteStore

    city, today = Path(argv[0]), date.fromisoformat(argv[1])
    portfolio = load_portfolio(city)
    store = DuckDBStore(portfolio.storage.path)
    sites: dict[str, float] = {}
    actions: Counter[str] = Counter()
    contracts = 0
    t0 = time.perf_counter()
    for site in portfolio.sites:
        if not site.contracts:
            continue
        sid = site.site.id
        contracts += len(site.contracts)
        t = time.perf_counter()
        statements = StatementStore(site.storage.statements_file)
        for action in Recompute(site, SiteStore(store, sid), statements).run_once(today):
            actions[action.what.split(":")[0]] += 1
        statements.close()
        sites[sid] = time.perf_counter() - t
    seconds = time.perf_counter() - t0
    store.close()
    result = {"seconds": seconds, "sites": sites, "contracts": contracts, "actions": actions}
    Path("recompute.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
