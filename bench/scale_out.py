"""Scale-out of MQTT ingest: 1, 2 and 4 collector processes on one `$share` subscription
against the local Mosquitto, beside the bare-subscriber ceiling with as many processes.

The method is bench/ingest_mqtt.py's (its pieces are imported): every consumer registers its
persistent session, goes offline, the broker queues N QoS 1 messages (PUBACKs counted), the
consumers come back and drain; the rate is messages received from the first to the last.
Each collector is `MqttSubscriber` -> `StoreWriter` -> its own DuckDB file (a DuckDB file
belongs to one process; in production they share InfluxDB). Every run checks that all N
messages were stored, once (zero loss).

On this 2-core machine, more than two processes compete with each other and with Mosquitto
(single-threaded) for the two cores: the figures show where adding processes stops paying,
and where the bare subscribers, which do nothing but count, meet the broker's own limit.

    python -m bench.scale_out [--messages N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.ingest_mqtt import run_case

PROCESSES = (1, 2, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--quick", action="store_true", help="400 messages: a smoke test")
    args = parser.parse_args(argv)
    n = 400 if args.quick else args.messages
    print(
        f"epcmon MQTT scale-out: {n:,} QoS 1 messages (2 readings each) on a $share subscription, "
        f"local Mosquitto, {os.cpu_count()} cores"
    )
    ok = True
    rates: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for workers in PROCESSES:
            for kind in ("bare", "collector"):
                name = f"{kind}-{workers}"
                (workdir / name).mkdir()
                r = run_case(name, workers, n, kind, workdir)
                got = r["stored"] if kind == "collector" else r["received"]
                loss = r["sent"] - got
                ok &= loss == 0 and r["sent"] == n
                rates[kind, workers] = r["rate"]
                print(
                    f"  {name:12s} {r['rate']:>9,.0f} messages/s, split {r['split']}, "
                    f"{'stored' if kind == 'collector' else 'received'} {got:,}, lost {loss}"
                )
    print()
    print(
        f"{'processes':>9s} {'collectors msg/s':>17s} {'vs 1':>6s} {'bare msg/s':>11s} {'of bare':>8s}"
    )
    one = rates["collector", 1] or 1.0
    for workers in PROCESSES:
        c, b = rates["collector", workers], rates["bare", workers]
        print(f"{workers:>9d} {c:>17,.0f} {c / one:>5.2f}x {b:>11,.0f} {c / (b or 1.0):>7.0%}")
    if not ok:
        print("LOSS: a run did not store every message it was sent", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
