"""One error body for every failed answer: gateway acks and ``request:error``, the router's
API and presence queries all build ``{ok: false, error: {code, message, retry_after_ms?}}``
with :func:`shared.protocol.errors.error_ack`."""

from __future__ import annotations

import orjson

from presence.query import members_answer
from presence.state import PresenceState
from router.answers import rate_limited, unavailable
from shared.protocol.errors import ErrorCode, error_ack, error_body


def test_the_body_and_its_optional_retry() -> None:
    assert error_body(ErrorCode.BAD_REQUEST, "no") == {"code": "bad_request", "message": "no"}
    assert error_ack(ErrorCode.RATE_LIMITED, "slow", 250) == {
        "ok": False, "error": {"code": "rate_limited", "message": "slow", "retry_after_ms": 250}}


def test_an_application_code_passes_unchanged() -> None:
    assert error_body("out_of_stock", "none left")["code"] == "out_of_stock"


def test_the_router_answers_the_same_body() -> None:
    assert rate_limited(100).body() == error_ack(ErrorCode.RATE_LIMITED,
                                                 "over the router's API rate limit", 100)
    assert unavailable("down").body() == error_ack(ErrorCode.UNAVAILABLE, "down")


def test_presence_answers_the_same_body() -> None:
    answer = members_answer(orjson.dumps({"room": "bad room"}), PresenceState(), True, 10)
    assert answer == error_ack(ErrorCode.BAD_REQUEST,
                               "room must be 1-128 characters of [A-Za-z0-9_:@-]")
