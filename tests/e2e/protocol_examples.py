#!/usr/bin/env python3
"""Replays every ```session block of docs/PROTOCOL.md against a fresh server.

The format is the one the document describes under "How to read the
examples": each line is `X> message` (client X sends) or `X< message` (client
X receives next); clients A, B and C connect to a fresh server for each block,
in that order, and have received their `ready`; `$A` is A's connection id; a
`<` line that is not a `userlist` skips the user lists that arrive before it.
The server keeps history for the rooms `chat-*`; `$EPOCH` in a `<` line
matches any epoch, the same one throughout a block.
A `>` payload is sent as the text it is, JSON or not (`this is not JSON`).

Two checks go beyond the lines themselves, because the document promises
them: a `<` message must be equal to the example (as JSON values), and when
the block is done no client may have received anything else but user lists.

So that a block means the same on every run, each `>` line is followed by a
barrier: a `users` request with a private ack id, whose reply shows that the
server has handled the line (a connection's messages are handled in order).
The barrier's replies are not shown to the block.

Run alone: `tests/e2e/protocol_examples.py [DOC]`; pytest runs each block as
a test through test_protocol_examples.py.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubclient import Client  # noqa: E402
from serverproc import ROOT, Server  # noqa: E402

DOC = ROOT / "docs" / "PROTOCOL.md"
CLIENTS = "ABC"
LINE = re.compile(r"^([A-Z])([<>]) (.*)$")
RECEIVE_TIMEOUT = 3.0
# The rooms whose history the examples show, and the placeholder of their epoch.
HISTORY_ROOMS = "chat-*"
EPOCH = "$EPOCH"
QUIET = 0.3


@dataclass
class Step:
    lineno: int
    client: str
    direction: str  # ">" sends, "<" receives
    payload: str


@dataclass
class Block:
    lineno: int
    section: str
    steps: list[Step] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"line {self.lineno}: {self.section}"

    def text(self) -> str:
        return "\n".join(f"  {s.lineno}: {s.client}{s.direction} {s.payload}" for s in self.steps)


class ExampleError(AssertionError):
    pass


def parse(doc: Path = DOC) -> list[Block]:
    """Every session block of the document, with line numbers."""
    blocks: list[Block] = []
    section = "(top)"
    current: Block | None = None
    for lineno, line in enumerate(doc.read_text().splitlines(), start=1):
        if current is None:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            elif line.strip() == "```session":
                current = Block(lineno, section)
            continue
        if line.strip() == "```":
            blocks.append(current)
            current = None
            continue
        if not line.strip():
            continue
        match = LINE.match(line)
        if not match or match.group(1) not in CLIENTS:
            raise ExampleError(f"{doc}:{lineno}: not a session line: {line!r}")
        current.steps.append(Step(lineno, match.group(1), match.group(2), match.group(3)))
    if current is not None:
        raise ExampleError(f"{doc}:{current.lineno}: session block never closed")
    return blocks


class Replay:
    """One block against one server."""

    def __init__(self, block: Block, server: Server, doc: Path):
        self.block = block
        self.doc = doc
        self.clients: dict[str, Client] = {}
        for letter in CLIENTS:
            self.clients[letter] = Client(server.ws)
        self.ids = {letter: client.id for letter, client in self.clients.items()}
        self.pending: dict[str, list[dict]] = {letter: [] for letter in CLIENTS}
        self.barriers = 0
        self.epoch: str | None = None

    def fail(self, step: Step | None, why: str) -> ExampleError:
        where = f"{self.doc}:{step.lineno}" if step else f"{self.doc}:{self.block.lineno}"
        return ExampleError(
            f"{where}: {why}\nin the block at line {self.block.lineno} "
            f"({self.block.section}):\n{self.block.text()}\nids: {self.ids}"
        )

    def substitute(self, payload: str) -> str:
        for letter, conn_id in self.ids.items():
            payload = payload.replace(f"${letter}", conn_id)
        return payload

    def run(self) -> None:
        try:
            for step in self.block.steps:
                if step.direction == ">":
                    self.send(step)
                else:
                    self.expect(step)
            self.check_nothing_else()
        finally:
            for client in self.clients.values():
                client.close()

    def send(self, step: Step) -> None:
        client = self.clients[step.client]
        client.send(self.substitute(step.payload))
        self.barriers += 1
        token = f"protocol-examples-barrier-{self.barriers}"
        client.send(json.dumps({"event": "users", "ack": token}))
        deadline = time.monotonic() + RECEIVE_TIMEOUT
        while True:
            try:
                message = client.recv(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise self.fail(step, f"the server did not handle this line within {RECEIVE_TIMEOUT}s")
            if message.get("event") == "ack" and message.get("ack") == token:
                return
            self.pending[step.client].append(message)

    def next_message(self, step: Step) -> dict:
        queue = self.pending[step.client]
        if queue:
            return queue.pop(0)
        try:
            return self.clients[step.client].recv(RECEIVE_TIMEOUT)
        except TimeoutError:
            raise self.fail(step, f"{step.client} received nothing within {RECEIVE_TIMEOUT}s")

    def expect(self, step: Step) -> None:
        try:
            expected = json.loads(self.substitute(step.payload))
        except json.JSONDecodeError as error:
            raise self.fail(step, f"the expected message is not JSON: {error}")
        skip_userlists = expected.get("event") != "userlist"
        skipped = []
        while True:
            got = self.next_message(step)
            if skip_userlists and got.get("event") == "userlist":
                skipped.append(got)
                continue
            break
        if not self.matches(expected, got):
            raise self.fail(
                step,
                f"{step.client} expected\n    {json.dumps(expected)}\n  got\n    {json.dumps(got)}"
                + (f"\n  (after skipping {skipped})" if skipped else ""),
            )

    def matches(self, expected, got) -> bool:
        """Equal as JSON values, where "$EPOCH" matches the block's epoch
        (the first one seen, then that one)."""
        if expected == EPOCH:
            if not isinstance(got, str):
                return False
            self.epoch = self.epoch or got
            return got == self.epoch
        if isinstance(expected, dict):
            return (
                isinstance(got, dict)
                and expected.keys() == got.keys()
                and all(self.matches(v, got[k]) for k, v in expected.items())
            )
        if isinstance(expected, list):
            return (
                isinstance(got, list)
                and len(expected) == len(got)
                and all(self.matches(e, g) for e, g in zip(expected, got))
            )
        return expected == got

    def check_nothing_else(self) -> None:
        time.sleep(QUIET)
        for letter, client in self.clients.items():
            rest = self.pending[letter] + client.drain(0.05)
            extra = [m for m in rest if m.get("event") != "userlist"]
            if extra:
                raise self.fail(None, f"{letter} also received {json.dumps(extra)}")


def replay(block: Block, doc: Path = DOC) -> None:
    """Runs one block against a fresh server; raises ExampleError on a mismatch."""
    with Server("--history", HISTORY_ROOMS) as server:
        try:
            Replay(block, server, doc).run()
        except ExampleError:
            raise
        except Exception as error:  # a crash of the client is a failure of the block too
            log = server.log().strip()
            raise ExampleError(
                f"{doc}:{block.lineno}: {type(error).__name__}: {error}\n{block.text()}"
                + (f"\nserver log:\n{log}" if log else "")
            ) from error


def main(argv: list[str]) -> int:
    doc = Path(argv[1]) if len(argv) > 1 else DOC
    blocks = parse(doc)
    if not blocks:
        print(f"no session blocks in {doc}")
        return 1
    failed = 0
    for block in blocks:
        try:
            replay(block, doc)
            print(f"ok - {block.name}")
        except ExampleError as error:
            failed += 1
            print(f"not ok - {block.name}\n{error}")
    print(f"{len(blocks) - failed} of {len(blocks)} session blocks replayed as written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
