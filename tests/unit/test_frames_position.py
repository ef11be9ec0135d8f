"""``with_position``: ``seq``/``prev`` spliced into a logged event's payload, the recovery
offset appended as its last argument, all without parsing JSON."""

from __future__ import annotations

import orjson

from shared.protocol.frames import event_frames, with_position


def test_seq_and_prev_go_first_into_the_payload_object() -> None:
    args = orjson.dumps(["message:received", {"room": "r", "id": "c1", "text": "hi"}])

    spliced = with_position(args, 42, 17, None)

    assert spliced == b'["message:received",{"seq":42,"prev":17,"room":"r","id":"c1","text":"hi"}]'
    assert list(orjson.loads(spliced)[1]) == ["seq", "prev", "room", "id", "text"]


def test_the_offset_is_appended_as_the_last_argument() -> None:
    args = orjson.dumps(["message:received", {"room": "r"}])

    spliced = with_position(args, 42, 0, "42|room=3Aa:7")

    assert spliced == b'["message:received",{"seq":42,"prev":0,"room":"r"},"42|room=3Aa:7"]'
    assert orjson.loads(spliced) == ["message:received", {"seq": 42, "prev": 0, "room": "r"},
                                     "42|room=3Aa:7"]


def test_an_empty_payload_object_gets_no_dangling_comma() -> None:
    assert with_position(b'["e",{}]', 1, 0, None) == b'["e",{"seq":1,"prev":0}]'
    assert with_position(b'["e",{}]', 1, 0, "1") == b'["e",{"seq":1,"prev":0},"1"]'


def test_a_non_object_payload_is_left_alone_but_still_gets_the_offset() -> None:
    assert with_position(b'["e","text"]', 5, 4, None) == b'["e","text"]'
    assert with_position(b'["e","text"]', 5, 4, "5") == b'["e","text","5"]'
    assert with_position(b'["e"]', 5, 4, "5") == b'["e","5"]'
    assert with_position(b'["e",[1,{"a":1}]]', 5, 4, None) == b'["e",[1,{"a":1}]]'


def test_only_the_first_payload_object_is_touched() -> None:
    args = orjson.dumps(["e", {"text": 'quote ",{ inside'}, {"other": 1}])

    spliced = with_position(args, 3, 2, "3")

    assert orjson.loads(spliced) == ["e", {"seq": 3, "prev": 2, "text": 'quote ",{ inside'},
                                     {"other": 1}, "3"]


def test_large_sequences() -> None:
    spliced = with_position(b'["e",{"a":1}]', 2**53 + 1, 2**53, str(2**53 + 1))

    assert orjson.loads(spliced) == ["e", {"seq": 2**53 + 1, "prev": 2**53, "a": 1},
                                     str(2**53 + 1)]


def test_positioned_args_frame_as_a_namespace_event() -> None:
    args = with_position(b'["e",{}]', 9, 8, "9")

    assert event_frames("/chat", args) == b'\x81\x24' + b'42/chat,["e",{"seq":9,"prev":8},"9"]'
