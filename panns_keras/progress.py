"""One progress display for every long-running verb.

On a terminal: one bar redrawn in place on stderr (at most every ``tty_interval`` s). In a
log file, a pipe or under CI (``CI`` set): a plain line every ``interval`` s, no escape codes
or carriage returns, plus a final line. Both forms read::

    tag: 3/10 files (30.0%) 0.8 files/s, eta 9 s, 1 failed

Example:
    >>> with Progress(len(paths), "tag", unit="files") as p:
    ...     for path in paths:
    ...         ...
    ...         p.update(1, failed=int(not ok))
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

# Plain-line interval (s) when stderr is not a terminal; PANNS_KERAS_PROGRESS_INTERVAL overrides.
INTERVAL_ENV = "PANNS_KERAS_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def _is_terminal(stream: TextIO) -> bool:
    if os.environ.get("CI"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _num(x: float) -> str:
    """Whole numbers as they are; fractions with the digits that tell (0.3 s, not 0 s)."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts ``done`` out of ``total`` units and shows it on ``stream`` (default stderr).

    Args:
        total: number of units, or None when unknown (no percentage or eta).
        desc: what is running, e.g. the verb ("tag", "prepare").
        unit: the unit's plural ("files", "clips", "steps").
        stream: where to write (default ``sys.stderr``).
        interval: seconds between plain lines when not on a terminal (default 30, or
            the ``PANNS_KERAS_PROGRESS_INTERVAL`` environment variable).
        enabled: False shows nothing (the counters still run).
    """

    def __init__(
        self,
        total: float | None,
        desc: str,
        unit: str = "items",
        stream: TextIO | None = None,
        interval: float | None = None,
        enabled: bool = True,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _is_terminal(self.stream)
        if interval is None:
            interval = float(os.environ.get(INTERVAL_ENV, "") or DEFAULT_INTERVAL)
        self.interval = 0.2 if self.tty else float(interval)
        self.enabled = enabled
        self.done, self.failed = 0, 0
        self.postfix = ""
        self.start = time.monotonic()
        self._last = self.start
        self._shown_at = None  # self.done when a line was last shown
        self._closed = False

    def line(self) -> str:
        """The current status line (no newline)."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.desc}: {_num(self.done)}"
        if self.total:
            text += f"/{_num(self.total)} {self.unit} ({100.0 * self.done / self.total:.1f}%)"
        else:
            text += f" {self.unit}"
        text += f" {rate:.2f} {self.unit}/s" if rate < 10 else f" {rate:.0f} {self.unit}/s"
        if self.total and 0 < self.done < self.total and rate > 0:
            text += f", eta {_duration((self.total - self.done) / rate)}"
        elif self._closed or (self.total and self.done >= self.total):
            text += f", {_duration(elapsed)}"
        if self.failed:
            text += f", {self.failed} failed"
        if self.postfix:
            text += f", {self.postfix}"
        return text

    def update(
        self, n: float = 1, failed: int = 0, postfix: str | None = None, force: bool = False
    ) -> None:
        """Adds ``n`` done units (``failed`` of them failed); ``postfix``: e.g. "loss 0.31"."""
        self.done += n
        self.failed += failed
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self._show()

    def _show(self, final: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            end = "\n" if final else ""
            self.stream.write("\r\x1b[K" + self.line() + end)
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._shown_at = self.done

    def close(self) -> None:
        """Shows the final line (once; off a terminal not again if it is already shown)."""
        if self._closed:
            return
        self._closed = True
        if self.tty or self._shown_at != self.done:
            self._show(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
