"""What a built wheel declares: the requirements of one of its extras, read from METADATA."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path


def canonical_name(name: str) -> str:
    """A project name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_requirements(wheel: Path, extra: str) -> set[str]:
    """The project names the wheel's METADATA requires for `extra` (canonical)."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = (n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("Requires-Dist:") and f'extra == "{extra}"' in line:
            m = re.match(r"[A-Za-z0-9._-]+", line.split(":", 1)[1].strip())
            assert m, line
            names.add(canonical_name(m.group(0)))
    return names
