"""The commands docs/SEEDS.md gives, one per seed: the tests start `serve`
with exactly what the page tells a user to run."""

from __future__ import annotations

import re
import shlex

from serverproc import ROOT

SEEDS_MD = ROOT / "docs" / "SEEDS.md"


def seed_command(seed: str, ports: dict[int, int] | None = None) -> list[str]:
    """The `serve` flags docs/SEEDS.md gives for `seed` (the command after
    its `seed-command` marker), with `ports` (documented → free) replaced."""
    text = SEEDS_MD.read_text()
    found = re.search(rf"<!-- seed-command: {seed} -->\s*```sh\n(.+?)\n```", text)
    assert found, f"docs/SEEDS.md has no command for seed {seed}"
    line = found.group(1)
    for documented, free in (ports or {}).items():
        assert str(documented) in line, (documented, line)
        line = line.replace(str(documented), str(free))
    argv = shlex.split(line)
    assert argv[:2] == ["switchboard", "serve"], line
    return argv[2:]
