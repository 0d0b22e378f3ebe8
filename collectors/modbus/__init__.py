"""Modbus TCP collection: pure request planning and decoding, and the poller that awaits."""
