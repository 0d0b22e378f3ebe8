"""The monthly energy report for the 机关事务管理局: one XLSX workbook and one PDF per month,
built from `processing`'s results (the numbers the API and the CLI serve), Chinese first.

| module | job |
|---|---|
| `content` | gather the month's figures: bills, year before, intensity, statements, coverage |
| `tables`, `sections` | the report's sections as bilingual tables, shared by both documents |
| `xlsx`, `pdf`, `charts` | draw them: XlsxWriter, fpdf2, matplotlib |
| `fonts` | the bundled CJK font (a subset of Noto Sans CJK SC, OFL) and its fallbacks |
| `build` | write a month's files and manifest; tell whether a stored report is current |
| `schedule` | the supervised part of `epcmon run` that keeps the closed months' reports |

May import `core` and `processing` (and reads the store through `processing`'s interface),
never `api`. The libraries are the `report` extra: `pip install 'epcmon[report]'`.
"""
