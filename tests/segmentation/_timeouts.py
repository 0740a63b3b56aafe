"""``deadline(seconds)``: fail a test whose block runs too long (Ray, torchrun)."""

from __future__ import annotations

import _thread
import contextlib
import threading
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the test if its block runs longer than ``seconds`` (interrupts the main thread)."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        _thread.interrupt_main()

    timer = threading.Timer(seconds, interrupt)
    timer.start()
    try:
        yield
    except KeyboardInterrupt:
        if fired.is_set():
            pytest.fail(f"did not finish within {seconds} s")
        raise
    finally:
        timer.cancel()
