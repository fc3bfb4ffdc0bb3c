"""Progress of a long run on stderr: a bar in a terminal, periodic lines in a log.

``Progress(total, label)`` is called with the number of samples done since
the last call (``progress(1)``, what ``Trainer.run`` calls). In a terminal it
redraws one line at most five times a second; when stderr is a file or a pipe
(``edgesnn simulate > log 2>&1``) it prints a line every ``every`` seconds and
at every tenth of the run, so a log shows that the run is alive.

The rate and the time left are measured from the first sample after
``start()``: a run calls ``start()`` after its warm-up (numba compilation,
the first evaluation), so the estimate does not carry the compile time.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 05 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Progress:
    """Samples done out of ``total``, with rate and time left after the warm-up."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 hidden: bool = False, every: float = 30.0, tty: bool | None = None):
        self.total, self.label, self.hidden, self.every = max(int(total), 0), label, hidden, every
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.done = 0
        self._t0: float | None = None        # clock at start()
        self._n0 = 0                         # samples done at start()
        self._last_draw = 0.0
        self._last_line = -1.0
        self._next_tenth = 1
        self._printed = -1                   # samples done at the last printed line

    # -- phases -------------------------------------------------------------
    def note(self, text: str) -> None:
        """One line about what the run is doing (compiling, evaluating)."""
        if not self.hidden:
            self._clear()
            print(f"{self.label}: {text}", file=self.stream, flush=True)

    def start(self) -> None:
        """The warm-up is over: rates count from here."""
        self._t0, self._n0 = time.perf_counter(), self.done
        self._last_line = self._t0
        self._draw(force=True)

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if self._t0 is None:
            self.start()
        self._draw()

    def close(self) -> None:
        if not self.hidden:
            self._draw(force=True, final=True)
            if self.tty:
                print(file=self.stream, flush=True)

    # -- drawing ------------------------------------------------------------
    def rate(self) -> float | None:
        """Samples per second since ``start()`` (None before two samples)."""
        if self._t0 is None or self.done - self._n0 < 1:
            return None
        dt = time.perf_counter() - self._t0
        return (self.done - self._n0) / dt if dt > 0 else None

    def status(self) -> str:
        pct = 100 * self.done / self.total if self.total else 100.0
        text = f"{self.done:,}/{self.total:,} samples ({pct:.0f}%)"
        r = self.rate()
        if r:
            text += f", {r:,.1f} samples/s"
            if self.done < self.total:
                text += f", about {duration((self.total - self.done) / r)} left"
        return text

    def _clear(self) -> None:
        if self.tty and self._last_draw:
            print("\r\033[K", end="", file=self.stream, flush=True)

    def _draw(self, force: bool = False, final: bool = False) -> None:
        if self.hidden:
            return
        now = time.perf_counter()
        if self.tty:
            if force or now - self._last_draw >= 0.2:
                width = 24
                fill = int(width * self.done / self.total) if self.total else width
                bar = "#" * fill + "-" * (width - fill)
                print(f"\r\033[K{self.label} [{bar}] {self.status()}", end="",
                      file=self.stream, flush=True)
                self._last_draw = now
            return
        tenth = 10 * self.done // self.total if self.total else 10
        if final or tenth >= self._next_tenth or now - self._last_line >= self.every:
            if self.done != self._printed:
                print(f"{self.label}: {self.status()}", file=self.stream, flush=True)
                self._printed = self.done
            self._last_line = now
            self._next_tenth = tenth + 1


class SlowNotice:
    """Prints ``text`` once if the block it guards takes more than ``after`` seconds.

    A first run compiles the numba kernels (about a minute); a later run loads
    them from the cache in a second or two and says nothing.
    """

    def __init__(self, progress: Progress, text: str, after: float = 3.0):
        self._timer = threading.Timer(after, progress.note, args=(text,))
        self._timer.daemon = True

    def __enter__(self) -> "SlowNotice":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
