"""The savings core: consumption from counters, baselines, statistics, savings, contracts.

Imports core and storage only. Everything is pure functions and plain objects except three
thin edges: `usage.load_usage` reads the `TimeSeriesStore`, `statements.StatementStore` owns
its SQLite file, and `plots.plot_statement` writes a PNG.
"""
