"""MQTT collection: pure payload parsing and topic routing, and the subscriber that awaits.

| module | holds |
|---|---|
| `payload` | payload bytes to readings by the site's payload formats, bounded (pure) |
| `routing` | which meter and format a topic belongs to (pure) |
| `link` | the paho-mqtt glue: one client, its network thread, backpressure, the messages it delivers |
| `outcomes` | what becomes of a run of messages: parsed, dead-lettered or stored, then acknowledged |
| `subscriber` | `MqttSubscriber`: the loop, and the pause, probe and reconnect while the store fails |
"""
