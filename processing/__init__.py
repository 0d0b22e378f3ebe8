"""The savings core: consumption from counters, baselines, statistics, savings, contracts;
and the building's roll-ups, department bills and energy intensity.

Imports core and storage only. Everything is pure functions and plain objects except a few
thin edges: `usage.load_usage`, `rollups.consumption_grid` (and through it `bills.month_bills`
and `intensity.intensity`) read the `TimeSeriesStore`, `statements.StatementStore` owns its
SQLite file, and `plots.plot_statement` writes a PNG.
"""
