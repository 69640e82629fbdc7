"""The architecture document as test data: spec numbers are read from it, not typed again.

``docs/ARCHITECTURE.md`` is the spec. Tests find a value with a regular expression
over one section, so a test fails if the template disagrees with the document.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "docs" / "ARCHITECTURE.md"


@lru_cache(maxsize=1)
def text() -> str:
    return SPEC.read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under the first heading containing ``heading`` up to the next heading of the
    same or a higher level (e.g. ``section("1. Networking")``)."""
    lines = text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and heading in m.group(2):
            level = len(m.group(1))
            body = []
            for nxt in lines[i + 1 :]:
                n = re.match(r"^(#+)\s", nxt)
                if n and len(n.group(1)) <= level:
                    break
                body.append(nxt)
            return "\n".join(body)
    raise LookupError(f"spec has no heading containing {heading!r}")


def find(pattern: str, heading: str | None = None, group: int = 1) -> str:
    """The first match of ``pattern`` (a regex with a group) in the spec or one section."""
    haystack = section(heading) if heading else text()
    m = re.search(pattern, haystack, flags=re.MULTILINE)
    if not m:
        raise LookupError(f"spec{' section ' + heading if heading else ''} has no match for {pattern!r}")
    return m.group(group)


def find_all(pattern: str, heading: str | None = None) -> list[str]:
    haystack = section(heading) if heading else text()
    return re.findall(pattern, haystack, flags=re.MULTILINE)


def number(pattern: str, heading: str | None = None) -> int:
    return int(find(pattern, heading))
