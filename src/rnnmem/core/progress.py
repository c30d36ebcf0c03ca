"""Progress reporting: a tqdm bar on a terminal, plain timestamped lines in a log file; a job's closing summary.

In a log, each progress line gives the fraction of the cap done, the elapsed time, the rate and the estimated time
left (tqdm's ``format_meter``); a loop that stops before its cap (success, early stopping) says so in its last line,
so the log never ends on a percentage of a cap the run was never going to reach. Every job ends its log with one
``summary:`` line (:func:`summary`) saying what it produced.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

LINE_FORMAT = ("{desc}: {percentage:5.1f}% ({n_fmt}/{total_fmt}{unit}) {elapsed} elapsed, {rate_fmt}, "
               "~{remaining} left{postfix}")


class LineProgress:
    """tqdm's update/set_postfix/close interface, printing one line per ``every`` fraction of the total."""

    def __init__(self, total: int, desc: str, stream: TextIO, every: float = 0.1, unit: str = "it",
                 initial: int = 0) -> None:
        self.total, self.desc, self.stream, self.unit = max(total, 1), desc, stream, unit
        self.count, self.initial, self.postfix = initial, initial, ""
        self.printed = initial
        self.step = max(1, int(self.total * every))
        self.next_report = self.step
        while self.next_report <= self.count:
            self.next_report += self.step
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.count >= self.next_report:
            self._print()
            while self.next_report <= self.count:
                self.next_report += self.step

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def line(self) -> str:
        """The progress line: done so far of the cap, elapsed, rate, estimated time left, the postfix."""
        return tqdm.format_meter(min(self.count, self.total), self.total, time.perf_counter() - self.start,
                                 prefix=self.desc, unit=f" {self.unit}", postfix=self.postfix or None,
                                 initial=self.initial, bar_format=LINE_FORMAT)

    def _print(self) -> None:
        self.printed = self.count
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.count < self.total:
            elapsed = tqdm.format_interval(time.perf_counter() - self.start)
            postfix = f", {self.postfix}" if self.postfix else ""
            print(f"{self.desc}: stopped after {self.count} of at most {self.total} {self.unit} in {elapsed}{postfix}",
                  file=self.stream, flush=True)
        elif self.printed != self.count:
            self._print()


def progress(total: int, desc: str, stream: TextIO | None = None, unit: str = "it",
             initial: int = 0) -> tqdm | LineProgress:
    """A bar when ``stream`` (stderr by default) is a terminal, line-based progress otherwise; ``initial`` counts
    work already done (a resumed run), which the rate and the time left leave out."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(total=total, desc=desc, file=stream, dynamic_ncols=True, unit=unit, initial=initial)
    return LineProgress(total, desc, stream, unit=unit, initial=initial)


def summary(text: str) -> None:
    """The last line of a job's log: what it produced, in one line (``summary: <text>``)."""
    print(f"summary: {' '.join(text.split())}", flush=True)
