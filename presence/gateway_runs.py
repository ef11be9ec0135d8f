"""Which run of each gateway is current, and which runs have sockets in the presence state.

A gateway restarted under the same id (SIGKILL, then a quick restart that keeps its liveness
key alive) gets a new ``boot``; its old run's sockets must be closed even though the gateway
never looked dead. A restarted gateway's records and boot notice all carry later stamps than
its old run's, so the newest stamp names the current run. Pure: the caller passes the set of
gateways whose liveness keys are present.
"""

from __future__ import annotations

from collections.abc import Collection


class GatewayRuns:
    def __init__(self) -> None:
        self._current: dict[str, tuple[float, str]] = {}  # gateway -> (stamp, boot)
        self._runs: dict[str, set[str]] = {}  # gateway -> boots with records seen

    def seen(self, gateway: str, boot: str) -> None:
        """A record of this run was folded into the state."""
        self._runs.setdefault(gateway, set()).add(boot)

    def newer(self, gateway: str, boot: str, stamp: float) -> bool:
        """Note ``boot`` as the gateway's current run if it is newer than the one known;
        ``True`` only when it replaced a known run."""
        current = self._current.get(gateway)
        if current is not None and (current[1] == boot or stamp <= current[0]):
            return False
        self._current[gateway] = (stamp, boot)
        return current is not None

    def replaced(self, gateway: str, boot: str, stamp: float) -> list[str]:
        """The old runs to close if ``boot`` is a newer run (whichever arrives first, the
        new run's boot notice or one of its records)."""
        if not self.newer(gateway, boot, stamp):
            return []
        return sorted(self._runs.get(gateway, set()) - {boot})

    def is_live(self, gateway: str, boot: str, live: Collection[str]) -> bool:
        """The gateway's liveness key is there and ``boot`` is its current run."""
        current = self._current.get(gateway)
        return gateway in live and (current is None or current[1] == boot)

    def runs(self, gateway: str) -> list[str]:
        return sorted(self._runs.get(gateway, set()))

    def closed(self, gateway: str, boot: str) -> None:
        self._runs.get(gateway, set()).discard(boot)
