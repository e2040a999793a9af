"""Every ```session example of docs/PROTOCOL.md, replayed against a fresh
server (see protocol_examples.py for the format and the checks)."""

from __future__ import annotations

import json

import pytest

import protocol_examples

BLOCKS = protocol_examples.parse()


def test_the_document_has_examples():
    assert len(BLOCKS) >= 10
    sections = {block.section for block in BLOCKS}
    for section in ("`userlist`", "`ack`", "`error`", "To a room", "Address messages"):
        assert section in sections


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.lineno}" for b in BLOCKS])
def test_session_example(block):
    protocol_examples.replay(block)


def json_examples(section: str) -> list[dict]:
    """The ```json blocks under a heading of the document."""
    examples, current, inside = [], None, False
    for line in protocol_examples.DOC.read_text().splitlines():
        if line.startswith("#"):
            current = line.lstrip("#").strip()
        elif line.strip() == "```json" and current == section:
            inside, text = True, []
        elif inside and line.strip() == "```":
            examples.append(json.loads("\n".join(text)))
            inside = False
        elif inside:
            text.append(line)
    return examples


def test_ready_example_has_the_shape_of_a_real_ready(server, connect):
    [example] = json_examples("`ready`")
    client = connect(server.ws)
    real = {"event": "ready", "data": {"id": client.id, "name": client.name}}
    assert real.keys() == example.keys()
    assert real["data"].keys() == example["data"].keys()
    assert len(example["data"]["id"]) == len(client.id)


def test_end_example_is_what_clients_get_on_shutdown(server, connect):
    [example] = json_examples("`end`")
    client = connect(server.ws)
    server.stop()
    assert client.drain(2.0) == [example]
