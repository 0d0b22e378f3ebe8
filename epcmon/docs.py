"""The configuration reference, generated from the models so it cannot drift.

`python -m epcmon.docs > docs/configuration.md` (or `make docs`); a test checks that the
committed file equals what this prints.
"""

from __future__ import annotations

import enum
import types
import typing
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from collectors.profiles import load_profiles
from core.config import PortfolioInfo, SiteConfig
from core.quantities import QUANTITIES

_SECTIONS: list[tuple[str, str]] = [
    ("site", "[site]"),
    ("calendar", "[calendar]"),
    ("storage", "[storage]"),
    ("mqtt", "[mqtt]"),
    ("api", "[api]"),
    ("schedule", "[schedule]"),
    ("buildings", "[[buildings]]"),
    ("tenants", "[[tenants]]"),
    ("gateways", "[[gateways]]"),
    ("payload_formats", "[payload_formats.NAME]"),
    ("meters", "[[meters]]"),
    ("contracts", "[[contracts]]"),
    ("billing", "[billing]"),
    ("intensity", "[intensity]"),
    ("reports", "[reports]"),
    ("alarms", "[alarms]"),
    ("simulation", "[simulation]"),
    ("notify", "[notify]"),
]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = list(dict.fromkeys(_type_name(a) for a in args if a is not type(None)))
        return " \\| ".join(names) + (" (optional)" if type(None) in args else "")
    if origin in (tuple, list):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"table of {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if annotation is date:
        return "date"
    if annotation is datetime:
        return "datetime (with UTC offset)"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value in ((), {}, None):
        return "–"
    if isinstance(value, BaseModel):
        return "(table below)"
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += nested_models(arg)
    return found


def _model_table(
    model: type[BaseModel], heading: str, out: list[str], skip: set[str] | None = None
) -> None:
    doc = (model.__doc__ or "").strip().splitlines()[0]
    out += [
        f"### `{heading}`",
        "",
        doc,
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    nested: list[tuple[str, list[type[BaseModel]]]] = []
    for name, field in model.model_fields.items():
        if skip is not None and name in skip:
            continue
        desc = (field.description or "").replace("\n", " ")
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
        if nested_models(field.annotation):
            nested.append((name, nested_models(field.annotation)))
    out.append("")
    for name, subs in nested:
        prefix = f"{heading.strip('[]')}.{name}"
        if len(subs) == 1:
            _model_table(subs[0], prefix, out)
        else:
            _union_tables(subs, prefix, out)


def _union_tables(models: list[type[BaseModel]], heading: str, out: list[str]) -> None:
    """A table that is one of several models chosen by its `type`: the keys they all take
    (same type, default and meaning) once, then each type's own keys."""

    def same(name: str) -> bool:
        first = models[0].model_fields[name]
        return all(
            name in m.model_fields
            and (m.model_fields[name].annotation, _default(m.model_fields[name]))
            == (first.annotation, _default(first))
            and m.model_fields[name].description == first.description
            for m in models
        )

    shared = [n for n in models[0].model_fields if n != "type" and same(n)]
    types = ", ".join(_type_name(m.model_fields["type"].annotation) for m in models)
    out += [
        f"### `{heading}`",
        "",
        f"`type` is one of {types}; every type takes these keys, and its own below.",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    kinds = " \\| ".join(_type_name(m.model_fields["type"].annotation) for m in models)
    first = models[0].model_fields["type"]
    out.append(f"| `type` | {kinds} | **required** | {first.description} |")
    for name in shared:
        field = models[0].model_fields[name]
        desc = (field.description or "").replace("\n", " ")
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
    out.append("")
    for model in models:
        kind = typing.get_args(model.model_fields["type"].annotation)[0]
        _model_table(model, f'{heading}` with `type = "{kind}"', out, skip={*shared, "type"})


def config_reference() -> str:
    out = [
        "# Site file reference",
        "",
        "<!-- generated by `python -m epcmon.docs` from core/config/; do not edit by hand -->",
        "",
        "A site is one TOML file (see `sites/luan-admin-center.toml`). Unknown keys are errors;",
        "every error names the file, the entity (meter id, gateway id, ...) and the key.",
        "",
        "## Sections",
        "",
    ]
    for name, heading in _SECTIONS:
        field = SiteConfig.model_fields[name]
        for model in nested_models(field.annotation):
            _model_table(model, heading, out)
    out += [
        "## A portfolio: `portfolio.toml`",
        "",
        "A directory holding `portfolio.toml` and one site file per institution is a portfolio",
        "(`epcmon run --site DIR`). `portfolio.toml` names it and holds what its sites share:",
        "`[storage]` and `[api]`, the same keys as a site file's (above), which replace the site",
        "files' own; each site keeps its statements, alarms and reports under",
        "`<statements directory>/sites/<site>/`, and its meters are stored as `<site>/<meter>`.",
        "",
    ]
    _model_table(PortfolioInfo, "[portfolio]", out)
    out += [
        "## Quantities",
        "",
        "Every reading is one of these, stored in the canonical unit. Counters are cumulative",
        "registers from which interval consumption is derived.",
        "",
        "| quantity | unit | counter | meaning |",
        "|---|---|---|---|",
    ]
    for q in QUANTITIES.values():
        out.append(
            f"| `{q.name}` | {q.unit.value} | {'yes' if q.counter else ''} | {q.description} |"
        )
    out += [
        "",
        "## Meter profiles",
        "",
        "Register maps shipped in `collectors/profiles/` (a profile with one source only is",
        "marked provisional).",
        "",
        "| profile | meter | function | word order | quantities | source |",
        "|---|---|---|---|---|---|",
    ]
    for p in sorted(load_profiles().values(), key=lambda p: p.name):
        flag = " (provisional)" if p.provisional else ""
        out.append(
            f"| `{p.name}` | {p.manufacturer} {p.model}{flag} | FC{p.function_code} | {p.word_order.value} "
            f"| {len(p.fields)} | {p.source} |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(config_reference(), end="")
