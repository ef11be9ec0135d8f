"""The gateways' own counts of what the faults did: transport closes by code (4000: missed
pongs) and recovery attempts by result, summed over the gateways' ``/metrics``."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families

CLOSES = "switchboard_gateway_closes_total"
RECOVERIES = "switchboard_gateway_recoveries_total"


def _scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


async def gateway_counts(urls: Sequence[str]) -> dict[str, int]:
    """``closes_4000``, ``closes_other``, ``recovered`` and ``fresh`` over every gateway."""
    counts = {"closes_4000": 0, "closes_other": 0, "recovered": 0, "fresh": 0}
    for url in urls:
        for name, labels, value in await asyncio.to_thread(_scrape, url):
            if name == CLOSES:
                counts["closes_4000" if labels["code"] == "4000" else "closes_other"] += int(value)
            elif name == RECOVERIES and labels.get("result") in counts:
                counts[labels["result"]] += int(value)
    return counts
