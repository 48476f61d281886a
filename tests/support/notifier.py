"""The notifier for tests: its TOML file and `roomctl notify` as a real process."""

from __future__ import annotations

from pathlib import Path

from tests.support.terminal import LiveOutput

SECRET = "test-webhook-secret-0123456789"


def notifier_config(
    folder: Path,
    webhook: str | None,
    ntfy: str | None,
    timeout_s: float = 2.0,
    timezone: str = "America/New_York",
) -> Path:
    """Staff: nina (assigned room 101), omar, paul (off shift), carol (charge nurse); the site
    in `timezone`."""
    lines = [
        'state_db = "notifier.sqlite"',
        'charge_nurse = "carol"',
        f'timezone = "{timezone}"',
        "[timing]",
        f"timeout_s = {timeout_s}",
        "max_attempts = 8",
        "backoff_s = 0.2",
        "backoff_max_s = 1.0",
    ]
    if webhook:
        lines += ["[webhook]", f'url = "{webhook}/page"', f'secret = "{SECRET}"']
    if ntfy:
        lines += ["[ntfy]", f'url = "{ntfy}"']
    for name, on_shift in (("nina", True), ("omar", True), ("paul", False), ("carol", True)):
        lines += ["[[staff]]", f'name = "{name}"', f'ntfy_topic = "roomctl-{name}"',
                  f"on_shift = {'true' if on_shift else 'false'}"]  # fmt: skip
    lines += ["[assignments]", '"101" = "nina"']
    path = folder / "notifier.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_notifier(
    broker_url: str, config: Path, site: str = "test", ops_port: int | None = None
) -> LiveOutput:
    ops = ["--ops-port", str(ops_port)] if ops_port is not None else []
    proc = LiveOutput(
        "notify", "--broker", broker_url, "--site", site, "--config", str(config), *ops
    )
    proc.wait_for("routing calls", timeout=30)
    return proc
