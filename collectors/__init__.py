"""Modbus and MQTT collection, meter profiles, availability, dead letters."""
