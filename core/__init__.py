"""Site configuration, domain types, the workday calendar and the error tree.

`core` imports nothing else of epcmon's: every other package may import it.
"""
