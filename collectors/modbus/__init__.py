"""Modbus TCP collection: pure request planning and decoding, and the poller that awaits.

| module | holds |
|---|---|
| `plan` | which reads fetch a meter's registers in as few requests as possible (pure) |
| `decode` | registers to engineering values: types, word orders, scale, offset, PT/CT (pure) |
| `frame` | is this the answer to the request in flight? (pure checks of answer frames) |
| `episodes` | when a gateway misbehaves and when it is fine again (pure bookkeeping) |
| `meter_plan` | `MeterPlan`: a meter's planned reads and its poll state |
| `guard` | pymodbus' TCP client with a guarded receive path; pymodbus' log quieted |
| `connection` | `GatewayConnection`: connecting with backoff, one request at a time, its retries |
| `poller` | `GatewayPoller`: the cycles of one gateway, meters' answers into readings, the sink |
"""
