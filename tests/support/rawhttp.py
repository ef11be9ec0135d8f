"""Raw bytes to an HTTP port and what comes back, for tests of the HTTP layer itself
(pipelining, refusals, closes), where a client library would hide the very bytes under test."""

from __future__ import annotations

import asyncio
import contextlib
import re

from tests.support.timing import UNIT


async def exchange(port: int, data: bytes, quiet: float = 0.3) -> bytes:
    """Send ``data``; read until the server closes or has been quiet ``quiet`` units."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    chunks = []
    with contextlib.suppress(TimeoutError):
        while chunk := await asyncio.wait_for(reader.read(65536), quiet * UNIT):
            chunks.append(chunk)
    writer.close()
    return b"".join(chunks)


def statuses(wire: bytes) -> list[int]:
    """The status of every response in ``wire``, in order."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", wire)]
