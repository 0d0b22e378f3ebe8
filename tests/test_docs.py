"""Docs that gate: the configuration reference is what the models say, and every CLI command
and top-level config section is in the README."""

from __future__ import annotations

from pathlib import Path

from core.config import SiteConfig
from epcmon.cli import build_parser
from epcmon.docs import config_reference, nested_models

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_configuration_reference_is_generated_from_the_models():
    committed = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    assert committed == config_reference(), "run `make docs` and commit docs/configuration.md"


def test_every_config_key_is_in_the_reference():
    reference = config_reference()
    for section, field in SiteConfig.model_fields.items():
        assert f"[{section}" in reference, section
        pending = nested_models(field.annotation)
        while pending:
            model = pending.pop()
            for name, sub in model.model_fields.items():
                assert f"| `{name}` |" in reference, f"{model.__name__}.{name} undocumented"
                assert sub.description, f"{model.__name__}.{name} has no docstring"
                pending += nested_models(sub.annotation)


def test_every_section_and_command_is_in_the_readme():
    for section in SiteConfig.model_fields:
        assert (
            f"`[{section}]`" in README
            or f"`[[{section}]]`" in README
            or f"`[{section}.NAME]`" in README
        ), section
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands
    for command in commands:
        assert f"epcmon {command}" in README, f"`epcmon {command}` is not in the README"
    assert "make demo" in README
    assert "make test" in README
