#!/usr/bin/env python3
"""module-cycles.py — import cycles between podstart's rooms.

Reads every .rs file under src/ and records which module it names through
`crate::<room>` paths (between top-level rooms) and `super::<file>` or
`crate::<room>::<file>` paths (between the files of one folder). Prints each
strongly connected group of more than one module and exits 1 when there is
one; test code (`tests.rs` files and what follows `#[cfg(test)]`) is left out.

    scripts/module-cycles.py [src]
"""
import os
import re
import sys
from collections import defaultdict

CRATE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)(?:::([a-z_][a-z0-9_]*))?")
SUPER = re.compile(r"\bsuper::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)::\{([^;]*)\}", re.S)


def production_text(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def scan(root):
    """Edges: (scope, from, to) with scope '' for rooms, else the folder."""
    edges = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            parts = rel[:-3].split("/")
            if parts[-1] == "mod":
                parts = parts[:-1]
            if not parts or parts == ["lib"] or parts == ["main"]:
                continue
            room = parts[0]
            folder = "/".join(parts[:-1])
            me = parts[-1]
            text = strip_comments(production_text(path))
            names = []
            for kind, group in USE_GROUP.findall(text):
                for item in re.split(r"[,\s{}]+", group):
                    head = item.split("::")[0]
                    if head:
                        names.append((kind, head, None))
            names += [("crate", a, b or None) for a, b in CRATE.findall(text)]
            names += [("super", a, None) for a in SUPER.findall(text)]
            for kind, a, b in names:
                if kind == "crate":
                    if a != room:
                        edges.add(("", room, a))
                    elif b and folder == room and len(parts) == 2 and b != me:
                        edges.add((room, me, b))
                elif kind == "super" and len(parts) >= 2 and a != me:
                    edges.add((folder, me, a))
    return edges


def cycles(edges):
    graphs = defaultdict(lambda: defaultdict(set))
    for scope, a, b in edges:
        graphs[scope][a].add(b)
    found = []
    for scope, graph in sorted(graphs.items()):
        index, low, stack, on, counter = {}, {}, [], set(), [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in graph.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    found.append((scope or "src", sorted(group)))

        for v in sorted(graph):
            if v not in index:
                visit(v)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "src"
    sys.setrecursionlimit(10000)
    found = cycles(scan(root))
    for scope, group in found:
        print(f"cycle in {scope}: {' <-> '.join(group)}")
    print(f"{len(found)} cycles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
