"""The report's fonts: a CJK font shipped with the package, so a fresh machine draws the
Chinese of the PDF and its charts (never boxes) with no font installed.

`Epcmon Sans SC` is Noto Sans CJK SC Regular (© Adobe, SIL Open Font License 1.1, `OFL.txt`
here) cut down to GB 2312 and the symbols a report uses (`python -m reports.fontsubset`).
A character outside it (a rare one in a department's name) is drawn with an installed CJK
font when the machine has one (`fallback()`); `missing()` names what neither can draw, and
the report lists it rather than printing boxes silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILY = "Epcmon Sans SC"
FONT_FILE = HERE / "EpcmonSansSC-Regular.otf"
LICENSE_FILE = HERE / "OFL.txt"

SYSTEM_CJK = (
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),
    (Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"), 2),
    (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),
    (Path("/usr/share/fonts/truetype/arphic/uming.ttc"), 0),
)
"""Installed CJK fonts tried, in order, for characters the bundled one lacks (Debian paths)."""


@cache
def _cmap(path: Path, index: int) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=index, lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing(texts: Iterable[str], fallback: tuple[Path, int] | None = None) -> str:
    """The characters of `texts` that neither the bundled font nor `fallback` can draw."""
    have = _cmap(FONT_FILE, 0) | (_cmap(*fallback) if fallback else frozenset())
    chars = {c for t in texts for c in t if c not in "\n\t\r" and ord(c) not in have}
    return "".join(sorted(chars))


def fallback(texts: Iterable[str]) -> tuple[Path, int] | None:
    """An installed CJK font that draws characters of `texts` the bundled one lacks; None
    when the bundled font draws them all, or no installed font helps."""
    texts = list(texts)
    lacking = missing(texts)
    if not lacking:
        return None
    for path, index in SYSTEM_CJK:
        if path.exists() and any(ord(c) in _cmap(path, index) for c in lacking):
            return path, index
    return None


@cache
def family_name(path: Path, index: int) -> str:
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=index, lazy=True) as font:
        return str(font["name"].getDebugName(1))


@cache
def matplotlib_family(extra: tuple[Path, int] | None = None) -> list[str]:
    """Register the bundled font (and `extra`, an installed fallback) with matplotlib; the
    font family list its text should use, in order."""
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(FONT_FILE))
    families = [FAMILY]
    if extra is not None:
        font_manager.fontManager.addfont(str(extra[0]))  # every face of a collection
        families.append(family_name(*extra))
    return [*families, "DejaVu Sans"]


__all__ = [
    "FAMILY",
    "FONT_FILE",
    "LICENSE_FILE",
    "fallback",
    "matplotlib_family",
    "missing",
]
