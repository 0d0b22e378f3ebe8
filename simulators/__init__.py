"""Meter simulators: the virtual site, Modbus TCP gateways and MQTT meters that play it."""
