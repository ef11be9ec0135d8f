"""A throw-away network namespace joined to the host by a veth pair, so that clients run where
the tests can break their network without touching anyone else's.

``ip netns add sbnf-<random>``; the host end holds ``10.231.x.1/30``, the namespace end
``.2``. Servers bind the host end's address (the one address the namespace can reach);
clients run inside with :meth:`Namespace.exec_argv`. :meth:`Namespace.delete` removes the
namespace (and with it the veth pair and every firewall rule in it); processes started in it
must be stopped first, by their own PIDs: a namespace lives on while a process holds it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass

POOL = ipaddress.ip_network("10.231.0.0/16")


def unavailable() -> str | None:
    """Why this machine cannot run the harness, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "needs root (ip netns, veth pairs and firewall rules): run as root, as CI does"
    missing = [tool for tool in ("ip", "node") if shutil.which(tool) is None]
    if shutil.which("iptables") is None and shutil.which("nft") is None:
        missing.append("iptables or nft")
    if missing:
        return f"needs {', '.join(missing)} (scripts/test installs them where it may)"
    return None


def run(*argv: str) -> str:
    """Run one setup command; its stderr is in the error when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    found = []
    for line in run("ip", "-4", "-o", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            found.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return found


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    for _ in range(100):
        base = POOL.network_address + 4 * secrets.randbelow(POOL.num_addresses // 4)
        subnet = ipaddress.ip_network(f"{base}/30")
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError(f"no free /30 left in {POOL}")


@dataclass
class Namespace:
    """One namespace and its veth pair; the name and subnet are new for every run."""

    name: str
    host_if: str
    inner_if: str
    host_ip: str
    inner_ip: str
    deleted: bool = False

    @classmethod
    def create(cls) -> Namespace:
        tag = secrets.token_hex(3)
        hosts = list(_free_subnet().hosts())
        ns = cls(f"sbnf-{tag}", f"sbnf{tag}h", f"sbnf{tag}n", str(hosts[0]), str(hosts[1]))
        run("ip", "netns", "add", ns.name)
        try:
            ns._wire()
        except BaseException:
            ns.delete()
            raise
        return ns

    def _wire(self) -> None:
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if)
        run("ip", "link", "set", self.inner_if, "netns", self.name)
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        self.inside("ip", "addr", "add", f"{self.inner_ip}/30", "dev", self.inner_if)
        self.inside("ip", "link", "set", "lo", "up")
        self.link_up()

    def exec_argv(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the PID is its own)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def inside(self, *argv: str) -> str:
        return run(*self.exec_argv(*argv))

    def link_down(self) -> None:
        """The namespace's end of the cable pulled: nothing crosses, sends fail at once."""
        self.inside("ip", "link", "set", self.inner_if, "down")

    def link_up(self) -> None:
        self.inside("ip", "link", "set", self.inner_if, "up")

    def delete(self) -> None:
        """Remove the namespace; its veth pair and firewall rules go with it. Idempotent."""
        if self.deleted:
            return
        self.deleted = True
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=15,
                       check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=15,
                       check=False)

    def exists(self) -> bool:
        names = run("ip", "netns", "list").split()
        return self.name in names
