#!/usr/bin/env python3
"""Report import cycles between the .rs files of each crate; exit 1 if there are any.

Files that import each other, directly or around a loop, cannot be read, tested
or changed alone: to follow one you must hold the others in your head, and a
change to any of them comes back to itself. Without cycles a crate reads bottom
up; what two files both need lives in a file of its own below them.

In src/ and crates/*/src, a.rs uses b.rs if it names b's module or an item of
it: in a `use` or in code, through `crate::`, `super::` (a child's `super::X` is
its parent's file), `self::` or a child module. lib.rs and main.rs (declarations
and re-exports), the `pub use` re-exports of a folder's mod.rs (its face to the
rest of the crate, as lib.rs is the crate's), comments, literals and
`#[cfg(test)] mod tests {}` are left out.
Each strongly connected component of several files is printed as a walk, e.g.

    switchboard: cluster/redis.rs -> cluster/sync.rs -> cluster/redis.rs
"""
import re
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Comments, strings and char literals (not lifetimes), blanked out first.
NOISE = re.compile(
    r"//[^\n]*|/\*.*?\*/|(?<!\w)b?r(#*)\".*?\"\1|(?<!\w)b?\"(?:\\.|[^\"\\])*\""
    r"|(?<!\w)b?'(?:\\u\{\w*\}|\\.|[^'\\])'",
    re.S,
)
TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod\s+\w+\s*\{")
CHILD = re.compile(r"\bmod\s+(\w+)\s*;")
USE = re.compile(r"\buse\s+([^;]+);")
REEXPORT = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+[^;]+;")
PATH = re.compile(r"(?<![\w:])\w+(?:\s*::\s*\w+)+")


def module_path(rel):
    """src-relative file -> module path: a/b.rs and a/b/mod.rs are ("a", "b"), lib.rs ()."""
    parts = rel.with_suffix("").parts
    return parts[:-1] if parts[-1] == "mod" or str(rel) in ("lib.rs", "main.rs") else parts


def strip(text):
    """The code without comments, literals and test modules."""
    text = NOISE.sub(" ", text)
    while match := TEST_MODULE.search(text):
        depth = 0
        for end in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        text = text[: match.start()] + text[end + 1 :]
    return text


def split_top(body):
    """Splits at the commas outside braces."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(body):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts, start = parts + [body[start:i]], i + 1
    return parts + [body[start:]]


def expand(tree, prefix=()):
    """`a::{b, c::{self, d}}` -> [(a, b), (a, c), (a, c, d)]."""
    head, brace, rest = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree)).partition("{")
    path = prefix + tuple(s for s in head.split("::") if s and s not in ("self", "*"))
    if not brace:
        return [path] if path else []
    return [p for part in split_top(rest[: rest.rindex("}")]) for p in expand(part, path)]


def absolute(path, own, children):
    """A path as written in the module `own` -> the same from the crate root; None if external."""
    if path[0] == "crate":
        return path[1:]
    if path[0] in children:
        return own + path
    if path[0] not in ("self", "super"):
        return None
    while path and path[0] in ("self", "super"):
        own, path = own[: len(own) - (path[0] == "super")], path[1:]
    return own + path


def imports(text, own, modules, facade=False):
    """The modules (keys of `modules`, each one file) that the module `own` uses."""
    text = strip(text)
    if facade:
        text = REEXPORT.sub(" ", text)
    children = set(CHILD.findall(text))
    paths = [p for tree in USE.findall(text) for p in expand(tree)]
    paths += [tuple(re.split(r"\s*::\s*", p)) for p in PATH.findall(USE.sub(" ", text))]
    found = set()
    for path in paths:
        target = absolute(path, own, children)
        while target and target not in modules:
            target = target[:-1]
        if target and target != own:
            found.add(target)
    return found


def parents(graph, start, within):
    """Breadth first from `start` inside `within`: each file reached -> the one it came from."""
    parent, queue = {start: None}, deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node] & within):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return parent


def route(graph, start, goal, within):
    """The files after `start` on a shortest import path to `goal`."""
    parent, steps = parents(graph, start, within), []
    while goal != start:
        steps, goal = [goal] + steps, parent[goal]
    return steps


def walk(graph, component):
    """A closed walk along imports through every file of a component, nearest file next."""
    steps, left = [min(component)], set(component) - {min(component)}
    while left:
        nearest = min(left, key=lambda n: (len(route(graph, steps[-1], n, component)), n))
        steps += route(graph, steps[-1], nearest, component)
        left -= set(steps)
    return steps + route(graph, steps[-1], steps[0], component)


def cycles(crate_dir):
    """(files in the graph, one line per cycle) for one crate."""
    manifest = (crate_dir / "Cargo.toml").read_text()
    crate = re.search(r"\[package\][^\[]*?\bname\s*=\s*\"([^\"]+)\"", manifest).group(1)
    src = crate_dir / "src"
    files = {module_path(p.relative_to(src)): p for p in sorted(src.rglob("*.rs"))}
    files = {m: p for m, p in files.items() if m}  # lib.rs and main.rs are not nodes
    graph = {m: imports(p.read_text(), m, files, p.name == "mod.rs") for m, p in files.items()}
    lines, done = [], set()
    for node in sorted(graph):
        if node not in done:
            reached = parents(graph, node, set(graph))
            component = {n for n in reached if node in parents(graph, n, set(graph))}
            done |= component
            if len(component) > 1:
                walked = (str(files[m].relative_to(src)) for m in walk(graph, component))
                lines.append(f"{crate}: " + " -> ".join(walked))
    return len(files), lines


def main():
    crates = [ROOT] + sorted(d for d in (ROOT / "crates").iterdir() if (d / "src").is_dir())
    results = [cycles(crate_dir) for crate_dir in crates]
    total = sum(count for count, _ in results)
    found = [line for _, lines in results for line in lines]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} import cycle(s) in {total} files")
        return 1
    print(f"no import cycles in {total} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
