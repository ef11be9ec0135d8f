"""Logging set-up: one line per event, and tokens never reach a log line.

Query strings can carry ``?token=`` (websockets logs request paths on errors), so a filter
redacts ``token=`` values and bearer credentials in every record.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(token=|[Bb]earer\s+)[^&\s\"']+")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1<redacted>", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup(level: str, service: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RedactTokens())
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
