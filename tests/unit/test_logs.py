"""Log set-up: ``token=`` values and bearer credentials are redacted from every line the
handler writes, whatever logger, level or formatting arguments carried them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from shared import logs
from shared.logs import RedactTokens, redact

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(("text", "expected"), [
    (f"GET /socket.io/?EIO=4&token={SECRET}&transport=websocket",
     "GET /socket.io/?EIO=4&token=<redacted>&transport=websocket"),
    (f"Authorization: Bearer {SECRET}", "Authorization: Bearer <redacted>"),
    (f"authorization: bearer {SECRET} then", "authorization: bearer <redacted> then"),
    (f"'token={SECRET}'", "'token=<redacted>'"),
    (f'{{"url": "/x?token={SECRET}"}}', '{"url": "/x?token=<redacted>"}'),
    (f"token={SECRET} and token=second", "token=<redacted> and token=<redacted>"),
    ("nothing secret here", "nothing secret here"),
])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert SECRET not in redact(text)


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_setup_installs_one_redacting_handler_at_the_level(root_logging: None) -> None:
    logs.setup("warning", "gateway")
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert root.level == logging.WARNING
    assert any(isinstance(f, RedactTokens) for f in root.handlers[0].filters)


def test_every_line_written_is_redacted(root_logging: None) -> None:
    logs.setup("debug", "router")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    out = io.StringIO()
    handler.setStream(out)
    log = logging.getLogger("switchboard.test")
    log.info("opening %s", f"/socket.io/?token={SECRET}")
    log.warning("header %r", f"Bearer {SECRET}")
    log.error(f"inline token={SECRET}")
    logging.getLogger("websockets.server").debug("path=%s&token=%s", "/x", SECRET)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert all(SECRET not in line and "<redacted>" in line for line in lines)
    assert all(" router " in line for line in lines)


def test_a_clean_record_is_left_as_it_was() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "count %d", (3,), None)
    assert RedactTokens().filter(record)
    assert (record.msg, record.args) == ("count %d", (3,))


def test_a_redacted_record_carries_the_cleaned_message_without_args() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "url %s", (f"?token={SECRET}",),
                               None)
    assert RedactTokens().filter(record)  # the line is kept, only cleaned
    assert record.getMessage() == "url ?token=<redacted>"
    assert record.args is None
