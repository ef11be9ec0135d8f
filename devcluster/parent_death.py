"""Children that cannot outlive devcluster, even when devcluster is SIGKILLed.

A supervisor that dies without its ``finally`` (SIGKILL, OOM) would otherwise leave
nats-server, router and presence running and holding their ports. Linux's
``PR_SET_PDEATHSIG`` has the kernel kill the child the moment its parent goes; SIGKILL rather
than SIGTERM, because with its supervisor gone nobody waits for a drain. The signal fires when
the *thread* that forked the child exits, so devcluster forks from its event loop's thread
(and from the default executor, whose threads live as long as the loop).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that ties the child to this process; ``None`` where the kernel has no
    such call (not Linux), so the caller falls back to its ordinary stop."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec
