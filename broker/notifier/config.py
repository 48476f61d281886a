"""The notifier's configuration: one TOML file, one pydantic model, loaded once in `main()`.

    state_db = "notifier.sqlite"        # relative to this file's folder
    name = "main"                       # its certificate is notifier-<name>; reports on
                                        # clinic/<site>/room/<room>/page/<name>
    charge_nurse = "carol"
    timezone = "America/New_York"       # the site's clock for the time on a page (default UTC)

    [timing]                            # optional
    timeout_s = 5                       # one HTTP attempt
    max_attempts = 6
    backoff_s = 1.0                     # then 2, 4, ... up to backoff_max_s
    backoff_max_s = 60

    [webhook]                           # optional: JSON POST, HMAC-SHA256 signed
    url = "https://pager.clinic.example/roomctl"
    secret_file = "/etc/roomctl/notifier-webhook.secret"   # or secret = "..."

    [ntfy]                              # optional: ntfy-compatible push, one topic per nurse
    url = "https://ntfy.clinic.example"

    [[staff]]
    name = "nina"
    ntfy_topic = "roomctl-nina"         # optional
    on_shift = true                     # default true

    assignments_from = "board"          # the board's staff name: its published assignments win
    [assignments]                       # room -> nurse until the board has published any
    "101" = "nina"
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contract import sitetime
from contract.messages import IDENT_PATTERN


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Section):
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_attempts: int = Field(default=6, ge=1, le=100)
    backoff_s: float = Field(default=1.0, gt=0, le=600)
    backoff_max_s: float = Field(default=60.0, gt=0, le=3600)


class Webhook(_Section):
    url: str = Field(pattern=r"^https?://")
    secret: str | None = Field(default=None, min_length=16)
    secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> Webhook:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret and secret_file")
        return self


class Ntfy(_Section):
    url: str = Field(pattern=r"^https?://")


class Staff(_Section):
    name: str = Field(pattern=IDENT_PATTERN)
    ntfy_topic: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    on_shift: bool = True


class NotifierConfig(_Section):
    state_db: Path = Path("notifier.sqlite")
    name: str = Field(default="main", pattern=IDENT_PATTERN)
    charge_nurse: str | None = None
    timing: Timing = Timing()
    webhook: Webhook | None = None
    ntfy: Ntfy | None = None
    staff: list[Staff] = Field(default_factory=list)
    assignments: dict[str, str] = Field(default_factory=dict)
    # whose retained assignments (clinic/<site>/assignments/<name>) win over the file's: the
    # board's staff identity (its certificate staff-<name>)
    assignments_from: str = Field(default="board", pattern=IDENT_PATTERN)
    # the site's time zone (IANA name): a page says when the call was placed on its clock
    timezone: str = sitetime.DEFAULT_ZONE

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            return sitetime.site_zone(value, "timezone").key
        except ValueError as exc:  # load() names the field
            raise ValueError(str(exc).removeprefix("timezone: ")) from None

    @model_validator(mode="after")
    def _known_names(self) -> NotifierConfig:
        names = {s.name for s in self.staff}
        if self.charge_nurse is not None and self.charge_nurse not in names:
            raise ValueError(f"charge_nurse {self.charge_nurse!r} is not in [[staff]]")
        for room, nurse in self.assignments.items():
            if nurse not in names:
                raise ValueError(f"assignments.{room}: {nurse!r} is not in [[staff]]")
        if self.webhook is None and self.ntfy is None:
            raise ValueError("no channel: add [webhook] or [ntfy]")
        return self

    def webhook_secret(self) -> bytes:
        if self.webhook is None:
            return b""
        if self.webhook.secret is not None:
            return self.webhook.secret.encode()
        assert self.webhook.secret_file is not None
        return self.webhook.secret_file.read_bytes().strip()


class ConfigError(ValueError):
    """A readable message naming the file and the field."""


def load(path: Path) -> NotifierConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        cfg = NotifierConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(file)"
        message = str(err["msg"]).removeprefix("Value error, ")  # our words, not pydantic's
        raise ConfigError(f"{path}: {where}: {message}") from exc
    base = path.parent
    updates: dict[str, object] = {}
    if not cfg.state_db.is_absolute():
        updates["state_db"] = base / cfg.state_db
    hook = cfg.webhook
    if hook is not None and hook.secret_file is not None and not hook.secret_file.is_absolute():
        updates["webhook"] = hook.model_copy(update={"secret_file": base / hook.secret_file})
    cfg = cfg.model_copy(update=updates)
    try:
        if len(cfg.webhook_secret()) < 16 and cfg.webhook is not None:
            raise ConfigError(f"{path}: webhook.secret_file: the secret is under 16 bytes")
    except OSError as exc:
        raise ConfigError(f"{path}: webhook.secret_file: cannot read: {exc.strerror}") from exc
    return cfg
