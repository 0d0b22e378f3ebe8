"""The one error tree. Each branch says whose fault it is.

    EpcmonError
    ├── ConfigError          ours: the site file or a profile is wrong (names file, entity, key)
    ├── DeviceError          the meter's or the gateway's
    │   ├── DeviceTimeout    no answer in time
    │   ├── DeviceBusy       Modbus exception 6: try again later
    │   └── BadResponse      an answer we cannot use (exception code, short frame)
    ├── PayloadError         an MQTT payload we cannot parse (goes to the dead letters)
    ├── BadReadings          readings no store may hold (a time outside the storable range,
    │                        points the server refuses): the data's fault, never retried
    ├── StoreError           the time-series store
    │   ├── StoreUnavailable cannot be reached now: spool and retry
    │   └── SpoolFull        cannot be reached and the spool is at its bound: an alarm
    ├── InsufficientData     not enough data for the question asked
    ├── NotFound             no such meter, contract, ...
    └── GrafanaError         Grafana refused a dashboard push or could not be reached

The API maps these to HTTP statuses in one handler.
"""

from __future__ import annotations


class EpcmonError(Exception):
    """Root of everything epcmon raises on purpose."""


class ConfigError(EpcmonError):
    """The configuration is wrong. Says the file, the entity and the key."""

    def __init__(self, message: str, *, file: str = "", entity: str = "", key: str = "") -> None:
        self.file = file
        self.entity = entity
        self.key = key
        self.reason = message
        where = ": ".join(part for part in (file, entity, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class DeviceError(EpcmonError):
    """A meter or gateway misbehaved."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class DeviceBusy(DeviceError):
    """Modbus exception 6 (server device busy): the only error worth retrying at once."""


class BadResponse(DeviceError):
    """The device answered with something we cannot use."""


class PayloadError(EpcmonError):
    """A message payload that cannot be turned into readings."""


class BadReadings(EpcmonError):
    """Readings a store refuses because of what they are, not because of the store's state:
    a time outside `core.readings.STORABLE_FROM_MS`..`STORABLE_UNTIL_MS`, or points the
    server itself refuses (InfluxDB: HTTP 400). Trying again cannot help, so this is not a
    `StoreError`: nothing is spooled or retried, and the whole batch is refused.

    `rows` are the indices of the offending readings in the batch, when they are known."""

    def __init__(self, message: str, *, rows: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.rows = rows


class StoreError(EpcmonError):
    """The time-series store failed: unavailable, full, locked, failing I/O. The same write
    may succeed later (spool it, or keep it unacknowledged and retry)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; the reading must be spooled."""


class SpoolFull(StoreError):
    """The store is unavailable and the spool holds as much as it may: nothing more is
    taken (the caller keeps the readings, e.g. the broker keeps unacknowledged messages)."""


class InsufficientData(EpcmonError):
    """Not enough data to answer."""


class NotFound(EpcmonError):
    """No such entity."""


class GrafanaError(EpcmonError):
    """Grafana answered a dashboard push with an error, or could not be reached."""
