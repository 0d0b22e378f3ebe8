"""Make the report's bundled CJK font: Noto Sans CJK SC Regular (SIL OFL 1.1) cut down to
the characters a Chinese report needs, so a fresh machine renders the PDF without any font
installed and the package stays small (~1.6 MB instead of ~16 MB).

    python -m reports.fontsubset /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

Kept: printable ASCII and Latin-1, Greek and Cyrillic, general punctuation, super- and
subscripts, letter-like symbols (℃), number forms, arrows, mathematical operators, enclosed
numbers, box drawing, CJK symbols and punctuation, full-width forms, and every character of
GB 2312 (its 6,763 hanzi: the names of the departments, buildings and contractors). A name
with a character outside it falls back to an installed CJK font, and the report says which
characters no font could draw (`reports.fonts`). The family is renamed, as the OFL asks of a
modified version, so it never stands in for a full Noto Sans CJK installed on the machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reports.fonts import FAMILY, FONT_FILE

RANGES = (
    (0x0020, 0x007F),
    (0x00A0, 0x0100),
    (0x0370, 0x0460),
    (0x2000, 0x20A0),
    (0x20AC, 0x20AD),
    (0x2100, 0x2300),
    (0x2460, 0x2600),
    (0x3000, 0x3040),
    (0xFF00, 0xFFF0),
)


def characters() -> set[int]:
    out: set[int] = set()
    for lo, hi in RANGES:
        out |= set(range(lo, hi))
    for first in range(0xA1, 0xF8):  # every GB 2312 code point: rows 1-87, cells 1-94
        for second in range(0xA1, 0xFF):
            try:
                out.add(ord(bytes([first, second]).decode("gb2312")))
            except UnicodeDecodeError:
                continue
    return out


def build(source: Path, out: Path, index: int) -> None:
    from fontTools import subset
    from fontTools.ttLib import TTCollection, TTFont

    font = TTCollection(source).fonts[index] if source.suffix == ".ttc" else TTFont(source)
    options = subset.Options()
    options.layout_features = []
    options.name_IDs = ["*"]
    options.hinting = False
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=characters())
    subsetter.subset(font)
    names = font["name"]
    for record in names.names:
        if record.nameID in (1, 4, 16):
            record.string = FAMILY
        elif record.nameID == 6:
            record.string = FAMILY.replace(" ", "")
        elif record.nameID == 3:
            record.string = f"{FAMILY.replace(' ', '')};subset of {record.toUnicode()}"
    if "CFF " in font:  # the PostScript names inside the outlines, which PDF readers show
        cff = font["CFF "].cff
        cff.fontNames = [FAMILY.replace(" ", "") + "-Regular"]
        top = cff.topDictIndex[0]
        top.FamilyName, top.FullName = FAMILY, FAMILY
    font.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", type=Path, help="NotoSansCJK-Regular.ttc or NotoSansCJKsc-Regular.otf"
    )
    parser.add_argument("--index", type=int, default=2, help="face in a .ttc (2: SC)")
    parser.add_argument("--out", type=Path, default=FONT_FILE)
    args = parser.parse_args()
    build(args.source, args.out, args.index)
    print(f"{args.out}: {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
