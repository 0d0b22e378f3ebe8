"""The savings core: consumption from counters, baselines, statistics, savings, contracts.

Imports core and storage only; nothing here does I/O of its own.
"""
