"""Packet drops on the namespace's end of the veth pair: all of them (a silent link) or a random
share (a lossy one). This kernel has no ``tc netem``; the filter table's random match does the
thinning. iptables when present (the issue's tool), else the same rules in nft.

Every rule lives in the namespace, so deleting the namespace removes them all; :meth:`lift`
removes them while it lives.
"""

from __future__ import annotations

import shutil
from typing import Protocol

from tests.netfault.netns import Namespace


class Rules(Protocol):
    def thin(self, probability: float) -> None: ...
    def silence(self) -> None: ...
    def unsilence(self) -> None: ...
    def lift(self) -> None: ...
    def listing(self) -> str: ...


class IptablesRules:
    """Silence as the first rule of INPUT/OUTPUT for the interface; thinning appended after it."""

    def __init__(self, ns: Namespace) -> None:
        self.ns, self._iface = ns, ns.inner_if
        self._thinned: list[list[str]] = []
        self.silent = False

    def _specs(self, extra: list[str]) -> list[list[str]]:
        return [["INPUT", "-i", self._iface, *extra, "-j", "DROP"],
                ["OUTPUT", "-o", self._iface, *extra, "-j", "DROP"]]

    def thin(self, probability: float) -> None:
        for chain, *spec in self._specs(["-m", "statistic", "--mode", "random",
                                         "--probability", str(probability)]):
            self.ns.inside("iptables", "-w", "-A", chain, *spec)
            self._thinned.append([chain, *spec])

    def silence(self) -> None:
        if not self.silent:
            for chain, *spec in self._specs([]):
                self.ns.inside("iptables", "-w", "-I", chain, "1", *spec)
            self.silent = True

    def unsilence(self) -> None:
        if self.silent:
            for spec in self._specs([]):
                self.ns.inside("iptables", "-w", "-D", *spec)
            self.silent = False

    def lift(self) -> None:
        self.unsilence()
        while self._thinned:
            self.ns.inside("iptables", "-w", "-D", *self._thinned.pop())

    def listing(self) -> str:
        return self.ns.inside("iptables", "-w", "-S")


class NftRules:
    """A table of its own: thinning in ``thin_*`` chains, silence in ``silent_*`` chains
    (flushed to end it), both hooked on input and output."""

    TABLE = ("inet", "sbnf")

    def __init__(self, ns: Namespace) -> None:
        self.ns, self._iface = ns, ns.inner_if
        self._made = False

    def _nft(self, *words: str) -> None:
        self.ns.inside("nft", *words)

    def _make(self) -> None:
        if self._made:
            return
        self._nft("add", "table", *self.TABLE)
        for kind, priority in (("silent", "-10"), ("thin", "0")):
            for hook in ("input", "output"):
                self._nft("add", "chain", *self.TABLE, f"{kind}_{hook}", "{", "type", "filter",
                          "hook", hook, "priority", priority, ";", "}")
        self._made = True

    def _rule(self, kind: str, *match: str) -> None:
        self._make()
        self._nft("add", "rule", *self.TABLE, f"{kind}_input", "iifname", self._iface, *match,
                  "drop")
        self._nft("add", "rule", *self.TABLE, f"{kind}_output", "oifname", self._iface,
                  *match, "drop")

    def thin(self, probability: float) -> None:
        self._rule("thin", "numgen", "random", "mod", "10000", "<",
                   str(round(probability * 10000)))

    def silence(self) -> None:
        self.unsilence()
        self._rule("silent")

    def unsilence(self) -> None:
        if self._made:
            for hook in ("input", "output"):
                self._nft("flush", "chain", *self.TABLE, f"silent_{hook}")

    def lift(self) -> None:
        if self._made:
            self._nft("delete", "table", *self.TABLE)
            self._made = False

    def listing(self) -> str:
        return self.ns.inside("nft", "list", "ruleset")


def firewall(ns: Namespace, prefer: str | None = None) -> Rules:
    """The rules for ``ns`` in iptables, or nft where iptables is missing (or ``prefer``)."""
    tool = prefer or ("iptables" if shutil.which("iptables") else "nft")
    return IptablesRules(ns) if tool == "iptables" else NftRules(ns)
