"""Where the deployer's output goes: progress and tables on stdout, problems on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def elapsed_text(seconds: float) -> str:
    """``  7s``, `` 1m05s``: fixed width so streamed event lines align."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds:>5}s"
    return f"{seconds // 60:>2}m{seconds % 60:02d}s"


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """Left-aligned columns; the last column is free text and is not padded."""
    allrows = [header, *rows]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header) - 1)]
    lines = []
    for r in allrows:
        cells = [r[i].ljust(widths[i]) for i in range(len(header) - 1)] + [r[-1]]
        lines.append("  ".join(cells).rstrip())
    return lines


class Console:
    """Prints with flush (CI logs stream), and tells the time since the command started."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._err = err
        self.clock = clock
        self.start = clock()

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    def say(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=self.err, flush=True)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=self.err, flush=True)

    def hint(self, message: str) -> None:
        print(f"  {message}", file=self.err, flush=True)

    def elapsed(self) -> float:
        return self.clock() - self.start
