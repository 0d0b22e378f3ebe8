"""The conventions operators expect of a command: `--version`, global options after the
subcommand too, `--json` output for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.keys import KeyStore, Role
from epcmon.cli import DEFAULT_SITE, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "sites/luan-admin-center.toml"


def test_version_prints_the_package_version(capsys) -> None:  # type: ignore[no-untyped-def]
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"epcmon {version('epcmon')}"


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["run"], False),
        (["-v", "run"], True),
        (["run", "-v"], True),
        (["run", "--verbose", "--role", "api"], True),
        (["savings", "report", "--contract", "c", "--month", "2025-01", "-v"], True),
        (["keys", "list", "-v"], True),
        (["-v", "keys", "list"], True),  # not reset by the subcommand's default
    ],
)
def test_verbose_is_accepted_before_and_after_the_command(argv: list[str], verbose: bool) -> None:
    assert build_parser().parse_args(argv).verbose is verbose


@pytest.mark.parametrize(
    ("argv", "site"),
    [
        (["keys", "list"], DEFAULT_SITE),
        (["keys", "--site", "a.toml", "list"], "a.toml"),
        (["keys", "list", "--site", "b.toml"], "b.toml"),
        (["keys", "create", "--role", "viewer", "--site", "c.toml"], "c.toml"),
        (["keys", "revoke", "k1", "--site", "d.toml"], "d.toml"),
    ],
)
def test_keys_site_is_accepted_after_the_subcommand(argv: list[str], site: str) -> None:
    assert build_parser().parse_args(argv).site == site


def _site_with_keys(tmp_path: Path) -> Path:
    text = SITE.read_text(encoding="utf-8").replace(
        "[api]\n", f'[api]\nkeys_path = "{tmp_path / "keys.sqlite3"}"\n', 1
    )
    assert str(tmp_path) in text
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_keys_list_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    site = _site_with_keys(tmp_path)
    keys = KeyStore(tmp_path / "keys.sqlite3")
    kept, _ = keys.create(Role.VIEWER, name="grafana")
    gone, _ = keys.create(Role.ENGINEER, name="old laptop")
    keys.revoke(gone)
    keys.close()
    assert main(["keys", "list", "--site", str(site), "--json"]) == 0
    listed = {k["id"]: k for k in json.loads(capsys.readouterr().out)}
    assert listed[kept]["role"] == "viewer"
    assert listed[kept]["state"] == "active"
    assert listed[kept]["name"] == "grafana"
    assert listed[kept]["contracts"] == []
    assert listed[gone]["state"] == "revoked"
    assert listed[gone]["revoked_ms"] > 0
    assert all("key" not in k for k in listed.values())  # never the keys themselves


def test_check_config_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["check-config", str(SITE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert doc["site"]["id"] == "luan-admin-center"
    assert doc["departments"] == 57
    assert doc["meters"] == sum(doc["meters_by_kind"].values())
    assert doc["meters"] == sum(doc["meters_by_protocol"].values())
    bad = tmp_path / "bad.toml"
    bad.write_text(
        SITE.read_text(encoding="utf-8").replace('kind = "electricity"', 'kind = "plasma"', 1),
        encoding="utf-8",
    )
    assert main(["check-config", str(bad), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["file"] == str(bad)
    assert doc["errors"]
    assert any("kind" in line for line in doc["errors"])
