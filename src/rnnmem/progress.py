"""Progress reporting: a tqdm bar on a terminal, plain timestamped lines in a log file."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class LineProgress:
    """tqdm's update/set_postfix/close interface, printing one line per ``every`` fraction of the total."""

    def __init__(self, total: int, desc: str, stream: TextIO, every: float = 0.1) -> None:
        self.total, self.desc, self.stream = max(total, 1), desc, stream
        self.count, self.postfix = 0, ""
        self.step = max(1, int(self.total * every))
        self.next_report = self.step
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.count >= self.next_report:
            self._print()
            while self.next_report <= self.count:
                self.next_report += self.step

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def _print(self) -> None:
        elapsed = time.perf_counter() - self.start
        pct = 100.0 * min(self.count, self.total) / self.total
        print(f"{self.desc}: {pct:5.1f}% ({self.count}/{self.total}) {elapsed:8.1f} s {self.postfix}",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.count < self.next_report - self.step or self.count < self.total:
            self._print()


def progress(total: int, desc: str, stream: TextIO | None = None) -> tqdm | LineProgress:
    """A bar when ``stream`` (stderr by default) is a terminal, line-based progress otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(total=total, desc=desc, file=stream, dynamic_ncols=True)
    return LineProgress(total, desc, stream)
