"""MQTT collection: pure payload parsing, and the subscriber that owns the connection."""
