"""The front door: the `epcmon` command and the runtime that wires the parts together."""
