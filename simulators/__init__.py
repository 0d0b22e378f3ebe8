"""Meter simulators: the virtual site, its history and truth, and the servers that play it.

| module | what |
|---|---|
| `weather`, `occupancy`, `roles`, `model` | the site model: climate, people, what each meter measures, the physics (both worlds: with and without the retrofit) |
| `derive` | everything else a meter shows (voltages, power factor, pressures, temperatures) |
| `history` | `generate_history()` / `iter_history()`: readings over a range, and the true savings |
| `site` | `SimulatedSite`: live values of every meter at any instant |
| `modbus_server`, `mqtt_publisher`, `payloads`, `serve` | the Modbus TCP gateways and MQTT meters |
| `city`, `city_sites`, `city_truth`, `toml_text` | a simulated city (a portfolio of site files), its true savings per contract, the TOML they are written in |
| `faults` | `FaultPlan`: what goes wrong, where, seeded |
| `clock`, `timegrid`, `rand` | simulated time, local time of UTC arrays, keyed random-access noise |
"""
