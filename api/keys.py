"""API keys: created once, shown once, stored hashed.

A key is `epc_<id>_<secret>`: the id (8 hex characters) finds the row, the secret (32 random
bytes) proves possession. Only SHA-256 of the whole key is stored; because the secret is
256 random bits, a fast hash is enough (slow password hashes exist for guessable secrets).
Comparison is constant-time. A key that authenticated is remembered (by its full text) until
the key table changes: `PRAGMA data_version` tells when another process (`epcmon keys revoke`)
committed, and this store's own changes clear it, so a revoked key is refused at once; it
spares each request the row lookup and the hash. Roles: `admin`, `engineer`, `viewer` (read-only, for Grafana)
and `vendor`, which is bound to its contracts. In a portfolio (many sites in one deployment)
the other roles can be scoped to sites: a county's facility office sees its own site, the
city's office (no sites named) sees them all; a vendor sees its contracts at whichever site.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from core.errors import ConfigError, NotFound


class Role(StrEnum):
    ADMIN = "admin"
    ENGINEER = "engineer"
    VIEWER = "viewer"
    VENDOR = "vendor"


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role
    contracts: frozenset[str]
    name: str
    sites: frozenset[str] = frozenset()
    """The sites the key may see; empty: every site (vendors: wherever their contracts are)."""

    def may_see_contract(self, contract_id: str) -> bool:
        return self.role is not Role.VENDOR or contract_id in self.contracts

    def may_see_site(self, site_id: str) -> bool:
        return not self.sites or site_id in self.sites


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    role: Role
    contracts: tuple[str, ...]
    name: str
    created_ms: int
    revoked_ms: int | None
    sites: tuple[str, ...] = ()


_KNOWN_MAX = 4096
"""Authenticated keys remembered at most (a site has tens)."""


def _ids(column: str) -> tuple[str, ...]:
    return tuple(c for c in column.split(",") if c)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, digest TEXT NOT NULL,"
            " role TEXT NOT NULL, contracts TEXT NOT NULL, name TEXT NOT NULL,"
            " created_ms INTEGER NOT NULL, revoked_ms INTEGER, sites TEXT NOT NULL DEFAULT '')"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}
        if "sites" not in columns:  # a keys file from before portfolios: every key sees all
            self._db.execute("ALTER TABLE api_keys ADD COLUMN sites TEXT NOT NULL DEFAULT ''")
        self._known: dict[str, Principal] = {}
        self._generation = 0  # this store's own revocations (data_version does not see them)
        self._version = self._data_version()

    def _data_version(self) -> int:
        """Changes whenever another connection commits to the file (SQLite's data_version)."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        return int(version)

    def close(self) -> None:
        self._db.close()

    def create(
        self,
        role: Role,
        *,
        contracts: tuple[str, ...] = (),
        name: str = "",
        sites: tuple[str, ...] = (),
    ) -> tuple[str, str]:
        """A new key: (key_id, the key). The key is not stored and cannot be shown again."""
        if role is Role.VENDOR and not contracts:
            raise ConfigError("a vendor key needs --contract (the contracts it may see)")
        if role is not Role.VENDOR and contracts:
            raise ConfigError("only vendor keys are bound to contracts")
        if role is Role.VENDOR and sites:
            raise ConfigError(
                "a vendor key is bound to its contracts, wherever they are: no --scope-site"
            )
        key_id = secrets.token_hex(4)
        key = f"epc_{key_id}_{secrets.token_urlsafe(32)}"
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (key_id, digest, role, contracts, name, created_ms, sites)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    _digest(key),
                    role.value,
                    ",".join(contracts),
                    name,
                    int(time.time() * 1000),
                    ",".join(sites),
                ),
            )
        return key_id, key

    def revoke(self, key_id: str) -> None:
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked_ms = ? WHERE key_id = ? AND revoked_ms IS NULL",
                (int(time.time() * 1000), key_id),
            )
            self._known.clear()
            self._generation += 1
        if cur.rowcount == 0:
            raise NotFound(f"no active key {key_id!r}")

    def list(self) -> list[KeyInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, role, contracts, name, created_ms, revoked_ms, sites"
                " FROM api_keys ORDER BY created_ms"
            ).fetchall()
        return [KeyInfo(r[0], Role(r[1]), _ids(r[2]), r[3], r[4], r[5], _ids(r[6])) for r in rows]

    def authenticate(self, key: str) -> Principal | None:
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "epc":
            return None
        key_id = parts[1]
        with self._lock:
            version = self._data_version()
            if version != self._version:  # another process changed the keys
                self._known.clear()
                self._version = version
            generation = self._generation
            known = self._known.get(key)
            if known is not None:
                return known
            row = self._db.execute(
                "SELECT digest, role, contracts, name, revoked_ms, sites FROM api_keys"
                " WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None or row[4] is not None:
            return None
        if not hmac.compare_digest(row[0], _digest(key)):
            return None
        principal = Principal(
            key_id, Role(row[1]), frozenset(_ids(row[2])), row[3], frozenset(_ids(row[5]))
        )
        with self._lock:
            if len(self._known) >= _KNOWN_MAX:  # many keys: start over rather than grow
                self._known.clear()
            if self._data_version() == version and self._generation == generation:
                # not revoked while we checked
                self._known[key] = principal
        return principal
