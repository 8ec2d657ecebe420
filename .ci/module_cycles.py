#!/usr/bin/env python3
"""Fails when modules of src/ import each other in a cycle.

Reads every `crate::`/`super::`/`self::` path outside comments and unit
tests, resolves it to the longest module it names, and looks for strongly
connected components among the resulting edges. A module and its own
ancestors or descendants are not counted (a parent re-exporting its
children, a child using its parent's items): those are one concept's
files, not a cycle between concepts."""

from __future__ import annotations

import collections
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def modules() -> dict[str, str]:
    found = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(dirpath, f)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib"):
                    parts = parts[:-1]
                found["::".join(parts)] = path
    return found


def resolve(mods: dict[str, str], cur: str, path: str) -> str | None:
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] == "super":
        base, segs = cur.split("::")[:-1], segs[1:]
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    elif segs[0] == "self":
        base, segs = (cur.split("::") if cur else []), segs[1:]
    else:
        return None
    for i in range(len(segs), -1, -1):
        m = "::".join(base + segs[:i])
        if m in mods:
            return m
    return None


def related(a: str, b: str) -> bool:
    return (
        a == b or a == "" or b == "" or a.startswith(b + "::") or b.startswith(a + "::")
    )


def main() -> int:
    mods = modules()
    graph = collections.defaultdict(set)
    for m, path in mods.items():
        with open(path) as f:
            src = f.read()
        src = re.sub(r"//[^\n]*", "", src)
        src = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", src, flags=re.DOTALL)
        for use in re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", src):
            t = resolve(mods, m, use)
            if t is not None and not related(m, t):
                graph[m].add(t)
    # Tarjan's strongly connected components.
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(mods):
        if v not in index:
            visit(v)
    for comp in cycles:
        members = set(comp)
        print("module cycle:", ", ".join(comp))
        for a in comp:
            for b in sorted(graph[a] & members):
                print(f"  {a} -> {b}")
    print(
        f"{len(mods)} modules, {sum(map(len, graph.values()))} edges, {len(cycles)} cycles"
    )
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
