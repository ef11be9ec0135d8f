"""The soak's fault plan: random drops all along, and every ``period`` the link goes silent
for ``silent`` seconds, by a DROP-everything rule and by pulling the link, in turn; every
other period the relays reset their open connections too.

Times are offsets into the run: each period starts quiet (``lead`` s), is silent, then quiet
again until the next; the run ends at ``duration`` with everything lifted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.netfault.firewall import Rules
from tests.netfault.netns import Namespace
from tests.netfault.relay import DelayRelay


@dataclass
class FaultPlan:
    ns: Namespace
    rules: Rules
    relays: Sequence[DelayRelay] = ()
    period: float = 15.0
    silent: float = 2.0
    lead: float = 5.0
    drop_share: float = 0.10
    done: Counter[str] = field(default_factory=Counter)

    async def run(self, duration: float) -> None:
        """Apply the plan for ``duration`` seconds; whatever happens, lift it at the end."""
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        self.rules.thin(self.drop_share)
        try:
            for cycle in range(int(duration // self.period) + 1):
                start = end - duration + cycle * self.period
                if start + self.lead + self.silent > end:
                    break
                await asyncio.sleep(max(0.0, start + self.lead - loop.time()))
                await self._silence(cycle)
                if cycle % 2 == 1 and self.relays:
                    for relay in self.relays:
                        relay.cut()
                    self.done["relay_cuts"] += 1
            await asyncio.sleep(max(0.0, end - loop.time()))
        finally:
            self.lift()

    async def _silence(self, cycle: int) -> None:
        by_link = cycle % 2 == 1
        if by_link:
            self.ns.link_down()
        else:
            self.rules.silence()
        try:
            await asyncio.sleep(self.silent)
        finally:
            if by_link:
                self.ns.link_up()
            else:
                self.rules.unsilence()
        self.done["link_down" if by_link else "silenced"] += 1

    def lift(self) -> None:
        """Everything back to a clean link (safe to call twice)."""
        if not self.ns.deleted:
            self.ns.link_up()
            self.rules.lift()
