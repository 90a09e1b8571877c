"""What a person sees of a long run: one header and a live timer per stage, a summary table at
the end, and everything the libraries print (Ray, Ray Data's plans, Ray Train, transformers,
Serve) in a log file instead of the terminal.

The stages' own output is moved at the file-descriptor level, so it also catches what Ray's C++
processes and worker forwarding write; ``verbose`` leaves the terminal as it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tqdm import tqdm


@dataclass
class StageRow:
    name: str
    measured: str = ""
    seconds: float = 0.0
    output: str = ""


class Console:
    def __init__(self, log_path: Path, *, verbose: bool = False, n_stages: int = 0) -> None:
        self.log_path = log_path
        self.verbose = verbose
        self.n_stages = n_stages
        self.rows: list[StageRow] = []
        self.term: TextIO = sys.stdout
        self._saved: list[int] = []

    def __enter__(self) -> Console:
        if self.verbose:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        self.term = os.fdopen(os.dup(self._saved[0]), "w", buffering=1)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        logging.captureWarnings(True)
        warnings.simplefilter("default")
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._saved:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._saved = []
        self.term.close()
        self.term = sys.stdout

    def say(self, line: str = "") -> None:
        print(line, file=self.term, flush=True)

    @contextlib.contextmanager
    def stage(self, name: str, what: str) -> Iterator[StageRow]:
        """Header, a live elapsed-time bar while the stage runs, and its row for the summary."""
        row = StageRow(name)
        self.say(f"[{len(self.rows) + 1}/{self.n_stages}] {name}: {what}")
        bar = tqdm(
            total=None,
            file=self.term,
            bar_format="      {desc} {elapsed}",
            desc="running",
            leave=False,
            mininterval=0.5,
            # a live timer only where a person watches; a log or a pipe gets the lines alone
            disable=self.verbose or not self.term.isatty(),
        )
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(1.0):
                if not bar.disable:
                    bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        t0 = time.perf_counter()
        try:
            yield row
        finally:
            stop.set()
            ticker.join()
            bar.close()
            row.seconds = time.perf_counter() - t0
            self.rows.append(row)
            if row.measured:
                self.say(f"      {row.measured} ({row.seconds:.0f} s)")

    def summary(self) -> None:
        head = ("stage", "measured", "time", "output")
        cells = [(r.name, r.measured, f"{r.seconds:.0f} s", r.output) for r in self.rows]
        widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(3)]
        self.say()
        self.say("  ".join(h.ljust(w) for h, w in zip(head, [*widths, 0], strict=True)).rstrip())
        for c in cells:
            self.say("  ".join(str(v).ljust(w) for v, w in zip(c, [*widths, 0], strict=True)))
        total = sum(r.seconds for r in self.rows)
        self.say(f"total {total:.0f} s; full log: {self.log_path}")
