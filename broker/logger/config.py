"""The logger's configuration: one pydantic model, from a TOML file and/or command-line flags."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.topics import check_ident


class ConfigError(ValueError):
    """A readable configuration problem (names the field and the file)."""


class LoggerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: str = "mqtts://localhost:8883"
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    db: Path
    site: str
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    session_expiry_s: int = Field(default=7 * 86400, ge=86400)
    receive_maximum: int = Field(default=4000, ge=1, le=65535)
    queue_max: int = Field(default=10000, ge=1)
    batch_max: int = Field(default=1000, ge=1)
    max_bytes: int = Field(default=65536, ge=256)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    quarantine_max_rows_per_room: int = Field(default=10_000, ge=1)
    quarantine_max_bytes_per_room: int = Field(default=50 * 1024 * 1024, ge=65_536)
    # Rejections a room may put into the quarantine per second (a burst of `..._burst_...` first);
    # past that they are counted as dropped, not stored (broker/logger/quarantine_rate.py).
    quarantine_rate_per_room: float = Field(default=20.0, gt=0, le=100_000)
    quarantine_burst_per_room: int = Field(default=200, ge=1, le=1_000_000)
    # Retention is always on: clinical data (vitals, events, calls, sessions, availability and
    # command logs) for `retention_days`, the quarantine for `quarantine_retention_days`.
    retention_days: float = Field(default=400.0, gt=0)
    quarantine_retention_days: float = Field(default=30.0, gt=0)
    retention_interval_s: float = Field(default=300.0, gt=0)
    retention_batch: int = Field(default=500, ge=1)
    # `/metrics` (Prometheus) and `/healthz` on their own port; None: not served.
    ops_host: str = "127.0.0.1"
    ops_port: int | None = Field(default=None, ge=0, le=65535)
    # The broker's copy of the PKI: its certificates' expiry and the CRL's next update as
    # metrics (no key is read).
    pki_dir: Path | None = None

    @field_validator("db", mode="before")
    @classmethod
    def _db(cls, value: object) -> object:
        if isinstance(value, str):  # before pydantic makes it a Path (which folds "//")
            from broker.logger.store import store_path

            return store_path(value)
        return value

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        return check_ident("site", value)

    @classmethod
    def load(cls, path: Path | None, overrides: dict[str, Any]) -> LoggerConfig:
        """TOML file (optional; keys as above, or under `[logger]`) then non-None overrides."""
        data: dict[str, Any] = {}
        where = "command line"
        if path is not None:
            where = str(path)
            try:
                raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from exc
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            section = raw.get("logger", raw)
            if not isinstance(section, dict):
                raise ConfigError(f"{path}: logger: must be a table ([logger]), not a value")
            data.update(section)
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{where}: {problems}") from exc
