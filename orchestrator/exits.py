"""What lessdata's exit codes mean, and SIGTERM handled as SIGINT.

====  =====================================================================
code  meaning
====  =====================================================================
0     done: every trial finished (or nothing was left to do)
1     trials failed, or tracking writes were lost (``lessdata resume NAME``)
2     the input was wrong: flags, the grid file, a value (nothing was started)
3     the environment was wrong: tracking server, cluster, data files, device,
      storage, or another driver running the grid (nothing was started)
130   interrupted (Ctrl-C); 143 stopped by SIGTERM (``docker stop``, a pod's
      deletion, ``timeout``): both checkpoint what they can and print the summary
      and the resume command
====  =====================================================================
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from trainers.errors import ConfigError, LessdataError

__all__ = [
    "DONE",
    "ENVIRONMENT",
    "EPILOG",
    "INTERRUPTED",
    "TERMINATED",
    "TRIALS_FAILED",
    "MAX_ERROR_LINE",
    "USAGE",
    "code_for",
    "error_line",
    "reclaim_sigterm",
    "sigterm_as_interrupt",
]

DONE = 0
TRIALS_FAILED = 1
USAGE = 2
ENVIRONMENT = 3
INTERRUPTED = 130
TERMINATED = 143

EPILOG = ("exit codes: 0 done; 1 trials failed; 2 wrong input (flags, grid, values); "
          "3 wrong environment (tracking server, cluster, data, device, storage, another "
          "driver); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM): `lessdata resume "
          "NAME` finishes the unfinished trials")


MAX_ERROR_LINE = 1000
"""The longest error line the CLI prints (each quote of the input is clipped shorter)."""


def error_line(prog: str, message: object) -> str:
    """``PROG: error: MESSAGE`` as one line of at most ``MAX_ERROR_LINE`` characters,
    whatever the message holds: the one place every error line of the CLI is capped."""
    from orchestrator.safe_yaml import clip

    return clip(f"{prog}: error: {message}", MAX_ERROR_LINE)


def code_for(exc: LessdataError) -> int:
    """2 for what the user typed or wrote, 3 for what the environment did."""
    return USAGE if isinstance(exc, ConfigError) else ENVIRONMENT


class Terminated:
    """Whether SIGTERM arrived (so the CLI exits 143 rather than 130)."""

    def __init__(self) -> None:
        self.received = False


@contextmanager
def sigterm_as_interrupt() -> Iterator[Terminated]:
    """SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C would.

    Ray Tune stops its trials gracefully on KeyboardInterrupt (their last checkpoints
    stay, the driver's summary and resume hint are printed); without this SIGTERM kills
    the driver mid-write. The previous handler is restored on exit.
    """
    state = Terminated()

    def handler(signum: int, frame: FrameType | None) -> None:
        state.received = True
        # Tune's own SIGINT handler (when installed) stops the experiment cleanly.
        os.kill(os.getpid(), signal.SIGINT)

    global _handler
    previous = signal.signal(signal.SIGTERM, handler)
    _handler = handler
    try:
        yield state
    finally:
        _handler = None
        signal.signal(signal.SIGTERM, previous)


_handler: Callable[[int, FrameType | None], None] | None = None
"""The SIGTERM handler of the innermost ``sigterm_as_interrupt`` (None outside one)."""


def reclaim_sigterm() -> None:
    """Put ``sigterm_as_interrupt``'s handler back after a library replaced it.

    ``ray.init`` sets its own SIGTERM handlers (a Python one that exits, and its core
    worker's C-level crash reporter that aborts): called after it, SIGTERM again stops
    Tune as Ctrl-C does. A no-op outside ``sigterm_as_interrupt`` or off the main thread.
    """
    if _handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
