"""Native libraries' chatter on file descriptor 2: lines nobody acts on, dropped; the
rest passed on (a Python-level redirect cannot see what C++ writes there)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def captured(*fds: int) -> Iterator[list[str]]:
    """Collect what is written to file descriptors ``fds`` in the block (native code
    included); the yielded list holds the text afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    text: list[str] = []
    saved = [os.dup(fd) for fd in fds]
    with tempfile.TemporaryFile() as sink:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        try:
            yield text
        finally:
            for fd, copy in zip(fds, saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern[str]) -> Iterator[None]:
    """Capture fd 2 for the block; afterwards print the lines ``noise`` does not match."""
    text: list[str] = []
    try:
        with captured(2) as text:
            yield
    finally:  # also when the block raised: its native reason is on fd 2
        kept = [line for line in "".join(text).splitlines()
                if line.strip() and not noise.match(line)]
        if kept:
            print("\n".join(kept), file=sys.stderr)
