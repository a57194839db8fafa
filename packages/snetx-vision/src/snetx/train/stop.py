"""Ctrl-C and SIGTERM as requests: the training loop stops at its next safe point.

Before the loop has started (data and model still being built, the frame cache being
filled) there is nothing to save, so a signal then stops the run at once
(:class:`Interrupted`); a second signal during training aborts without waiting.
"""

import signal


class Interrupted(Exception):
    """A stop that could not wait for a safe point: before training, or a second signal."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


#: exit code of a run stopped by each signal (128 + the signal's number)
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopRequest:
    """SIGINT or SIGTERM set a flag the loop checks at safe points once :attr:`armed`;
    before that, or on a second signal, :class:`Interrupted` is raised at once."""

    def __init__(self):
        self.requested = False
        self.signal = None
        self.armed = False
        self._previous = {}

    @property
    def code(self):
        return CODES.get(self.signal, 130)

    def _handler(self, signum, frame):
        name = NAMES.get(signum, f"signal {signum}")
        if not self.armed:
            raise Interrupted(
                f"stopped by {name} before training started; nothing saved", CODES[signum]
            )
        if self.requested:
            raise Interrupted(
                f"stopped at once by a second {name}; the last checkpoint written is kept "
                "(continue with --resume)",
                CODES[signum],
            )
        self.requested, self.signal = True, signum

    def __enter__(self):
        for sig in CODES:
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave the signals as they are
                pass
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
