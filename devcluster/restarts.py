"""When devcluster restarts a child that died, as pure state.

A child that dies is restarted under its name (a SIGKILLed gateway comes back as ``gw-1``)
while the rest keep serving, as an orchestrator would. A child that keeps dying right after
its start is retried with a doubling delay, so a broken build or a taken port logs once a few
seconds rather than spinning; a child that ran for a while starts afresh at the short delay.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 8.0
STABLE_AFTER_S = 10.0


@dataclass(slots=True)
class RestartPolicy:
    """One child's restart history."""

    restarts: int = 0
    _delay: float = 0.0

    def after_exit(self, ran_for_s: float) -> float:
        """The delay before the next start of a child that ran ``ran_for_s`` seconds."""
        if ran_for_s >= STABLE_AFTER_S or self._delay == 0.0:
            self._delay = FIRST_DELAY_S
        else:
            self._delay = min(self._delay * 2, MAX_DELAY_S)
        self.restarts += 1
        return self._delay
