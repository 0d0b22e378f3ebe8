"""The full record: a statement downloaded through the API (or exported) recomputes, from the
file alone, to the cent; a changed figure or input is named; statuses say when a baseline
fails its criteria; a statements file from before statuses opens."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from epcmon.cli import main
from processing.contract import recompute, verify
from processing.record import Statement, first_difference
from processing.statements import StatementStore
from processing.sufficiency import Finding, Severity
from tests.api_fixtures import STATEMENT_MONTH, app_for, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):  # type: ignore[no-untyped-def]
    w = make_world(tmp_path_factory.mktemp("record"))
    yield w
    w.store.close()
    w.keys.close()


@pytest.fixture(scope="module")
def client(world):  # type: ignore[no-untyped-def]
    with TestClient(app_for(world)) as c:
        yield c


def _download(world, client, month: str = STATEMENT_MONTH) -> dict:  # type: ignore[no-untyped-def]
    own = world.site.contracts[0].id
    r = client.get(
        f"/api/v1/contracts/{own}/statements/{month}",
        headers={"Authorization": f"Bearer {world.tokens['vendor']}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_statement_downloaded_with_the_vendor_key_verifies_to_the_cent(
    world, client, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    record = _download(world, client)
    for key in ("model", "contract", "inputs", "findings", "software", "calendar", "pricing"):
        assert record[key], key
    assert len(record["inputs"]["daily"]["day"]) == 92  # 2025-07-01 .. 2025-09-30
    assert record["inputs"]["profile"]["shape"]  # the daily model's hourly shape
    assert record["status"] == "final"
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    assert main(["savings", "verify", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "identical"
    again = recompute(json.loads(path.read_text(encoding="utf-8")))
    for key, money in again.money.items():
        assert round(money.total_cny, 2) == round(record["numbers"][key]["money"]["total_cny"], 2)
        assert round(money.vendor_cny, 2) == round(record["numbers"][key]["money"]["vendor_cny"], 2)


def test_a_changed_cent_is_the_first_difference(world, client, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    record = _download(world, client)
    record["numbers"]["month"]["money"]["vendor_cny"] += 0.01
    path = tmp_path / "cent.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    assert main(["savings", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("differs: numbers.month.money.vendor_cny:")


def test_a_changed_input_is_named(world, client, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    record = _download(world, client)
    record["inputs"]["daily"]["actual"][40] += 100.0
    path = tmp_path / "input.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    assert main(["savings", "verify", str(path)]) == 1
    assert "inputs_digest" in capsys.readouterr().out
    record["inputs_digest"] = recompute(record).inputs_digest  # a forger updates the digest
    path.write_text(json.dumps(record), encoding="utf-8")
    assert main(["savings", "verify", str(path)]) == 1
    assert "differs: numbers.year_to_date." in capsys.readouterr().out  # the figures do not follow


def test_not_a_record_is_a_user_error(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["savings", "verify", str(bad)]) == 2
    assert "not a JSON document" in capsys.readouterr().err
    bad.write_text('{"numbers": {}}', encoding="utf-8")
    assert main(["savings", "verify", str(bad)]) == 2
    assert "not a statement record" in capsys.readouterr().err
    assert main(["savings", "verify", str(tmp_path / "missing.json")]) == 2


def test_export_writes_what_the_api_serves(world, client, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    text = Path(world.site.source).read_text(encoding="utf-8")
    text = text.replace(
        'path = "data/luan-admin-center.duckdb"', f'path = "{tmp_path}/unused.duckdb"'
    )
    site_file = tmp_path / "site.toml"
    site_file.write_text(text, encoding="utf-8")
    # the site's statements file sits beside its DuckDB file: put the world's records there
    from epcmon.sites import load

    target = Path(load(site_file).storage.statements_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(Path(world.statements.path).read_bytes())
    out = tmp_path / "export.json"
    own = world.site.contracts[0].id
    args = ["savings", "export", "--contract", own, "--month", STATEMENT_MONTH]
    assert main([*args, "--site", str(site_file), "--out", str(out)]) == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert first_difference(exported, _download(world, client)) is None
    assert main(["savings", "verify", str(out)]) == 0
    capsys.readouterr()
    assert main([*args[:-1], "2025-08", "--site", str(site_file)]) == 2  # none stored
    assert "no electricity statement" in capsys.readouterr().err


def test_an_hourly_model_record_carries_its_hours(world, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from processing.contract import fit_baseline, statement

    contract = world.site.contracts[0]
    baseline = fit_baseline(world.site, contract.id, world.store, model="hourly")
    stmt = statement(world.site, contract.id, world.store, "2025-08", baseline=baseline)
    record = stmt.to_dict()
    assert len(record["inputs"]["hourly"]["actual"]) == 62 * 24
    assert "profile" not in record["inputs"]  # the hourly model predicts its own hours
    path = tmp_path / "hourly.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    assert main(["savings", "verify", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "identical"


def test_verify_tolerates_only_last_bit_differences() -> None:
    assert first_difference({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 + 1e-13]}) is None
    assert (
        first_difference({"a": [1.0, 2.0]}, {"a": [1.0, 2.01]})
        == "a[1]: 2.0 in the file, 2.01 recomputed"
    )
    assert first_difference({"a": None}, {"a": float("nan")}) is None  # null is how JSON says NaN
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == "b: missing from the file"


# -- status ------------------------------------------------------------------------------------


def _unreliable(stmt: Statement) -> Statement:
    bad = Finding(
        "caltrack_single_model",
        Severity.ERROR,
        "CalTRACK 3.4.3.2",
        "all 12 baseline months fail the single-model test",
        {"months": 12},
    )
    return replace(stmt, findings=(*stmt.findings, bad))


def test_a_statement_failing_a_criterion_says_so(world, client) -> None:  # type: ignore[no-untyped-def]
    own = world.site.contracts[0].id
    stmt = world.statements.latest_statement(own, STATEMENT_MONTH)
    assert stmt is not None
    assert stmt.status(final=True) == "final"
    with StatementStore(":memory:") as store:
        store.save_statement(_unreliable(stmt))
        store.save_provisional(_unreliable(replace(stmt, month="2025-10")))
        entries = store.months(own)
        expected = (
            "unreliable: caltrack_single_model: all 12 baseline months fail the single-model test"
        )
        assert [(e.month, e.status, e.version) for e in entries] == [
            (STATEMENT_MONTH, expected, 1),
            ("2025-10", expected, 0),
        ]
        found = store.record(own, STATEMENT_MONTH)
        assert found is not None
        assert found[1] == expected
    # through the API: the world's own statement is final, listed and served as such
    h = {"Authorization": f"Bearer {world.tokens['vendor']}"}
    listing = client.get(f"/api/v1/contracts/{own}/statements", headers=h).json()
    assert [(e["month"], e["status"]) for e in listing] == [(STATEMENT_MONTH, "final")]
    assert "inputs" not in listing[0]  # the listing stays light


def test_a_statements_file_from_before_statuses_opens(tmp_path, world) -> None:  # type: ignore[no-untyped-def]
    own = world.site.contracts[0].id
    stored = world.statements.latest_statement_json(own, STATEMENT_MONTH)
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE statements (id INTEGER PRIMARY KEY AUTOINCREMENT, contract_id TEXT NOT NULL, "
        "utility TEXT NOT NULL, month TEXT NOT NULL, created_at TEXT NOT NULL, "
        "inputs_digest TEXT NOT NULL, avoided REAL NOT NULL, body TEXT NOT NULL)"
    )
    con.execute(
        "INSERT INTO statements (contract_id, utility, month, created_at, inputs_digest, avoided, "
        "body) VALUES (?, 'electricity', ?, 'then', 'd', 1.0, ?)",
        (own, STATEMENT_MONTH, json.dumps(stored)),
    )
    con.commit()
    con.close()
    with StatementStore(path) as store:
        assert [(e.month, e.status) for e in store.months(own)] == [(STATEMENT_MONTH, "final")]
        found = store.record(own, STATEMENT_MONTH)
        assert found is not None
        assert found[1] == "final"
        assert verify(found[0]) is None


# -- records written before this method --------------------------------------------------------

LEGACY = Path(__file__).parent / "data" / "legacy_statement.json"
"""A statement written by epcmon-processing/1 (main at b20fe85: money split by each day's
consumption, the water boundary as `water_meters`), 2025-09 of the reference contract on the
synthetic building of `api_fixtures` (seed 5); `legacy_hourly_statement.json`: 2025-07 with
the hourly model."""


def test_an_hourly_record_from_before_verifies_as_it_was() -> None:
    """The same for an hourly model's record (2025-07): priced as it was, not re-priced by
    its hours."""
    record = json.loads((LEGACY.parent / "legacy_hourly_statement.json").read_text("utf-8"))
    assert record["model"]["model"] == "hourly-towt"
    assert verify(record) is None
    assert recompute(record).pricing.startswith("by the day's consumption shares")


def test_a_record_from_before_verifies_as_it_was(capsys) -> None:  # type: ignore[no-untyped-def]
    record = json.loads(LEGACY.read_text(encoding="utf-8"))
    assert record["software"] == "epcmon-processing/1"
    assert "water_meters" in record["contract"]  # the old shape of the contract
    assert verify(record) is None
    again = recompute(record)
    assert again.pricing.startswith("by the day's consumption shares")
    assert again.money["month"].total_cny == record["numbers"]["month"]["money"]["total_cny"]
    assert main(["savings", "verify", str(LEGACY)]) == 0
    assert capsys.readouterr().out.strip() == "identical"
    record["numbers"]["month"]["avoided"] += 1.0
    assert verify(record) == (
        f"numbers.month.avoided: {record['numbers']['month']['avoided']!r} in the file, "
        f"{again.month_savings.avoided!r} recomputed"
    )


def test_a_baseline_from_before_gets_its_hourly_profile(world) -> None:  # type: ignore[no-untyped-def]
    """A daily baseline stored without the profile: the statements compute it from the
    baseline period (the model is not refitted) and price by the hour."""
    from processing.baseline import Baseline
    from processing.contract import statements

    contract = world.site.contracts[0]
    stored = world.statements.latest_baseline(contract.id)
    assert stored is not None
    assert stored.profile is not None
    old = Baseline.from_dict({k: v for k, v in stored.to_dict().items() if k != "profile"})
    assert old.profile is None
    stmt = statements(world.site, contract.id, world.store, [STATEMENT_MONTH], baseline=old)[0]
    assert stmt.pricing.startswith("by the hour")
    assert stmt.model == stored.model.to_dict()
    assert stmt.inputs.profile is not None
    assert np.array_equal(stmt.inputs.profile.shape, stored.profile.shape)
