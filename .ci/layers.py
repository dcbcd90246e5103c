#!/usr/bin/env python3
"""Fails when the top-level modules of src/ import each other in a circle.

Reads every non-test source file under src/, takes the top-level module each
`crate::NAME` path names (in `use` lines and in inline paths), and looks for
cycles in the graph of top-level modules. Test code (`tests.rs` files and a
trailing `#[cfg(test)] mod tests`) is left out: tests may reach anywhere.
Prints the graph with --graph.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
ROOTS = {"lib.rs", "main.rs"}


def top_module(rel):
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_tests(text):
    # Unit tests sit at the end of a file behind `#[cfg(test)]`.
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod tests\b", text, re.M)
    text = text if m is None else text[: m.start()]
    # Comments and doc comments may name paths that are not imports.
    return re.sub(r"//[^\n]*", "", text)


def crate_names(text):
    names = set()
    for m in re.finditer(r"\bcrate::(\{[^}]*\}|\w+)", text):
        group = m.group(1)
        if group.startswith("{"):
            depth, part = 0, ""
            for ch in group[1:]:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    if depth == 0:
                        break
                    depth -= 1
                elif ch == "," and depth == 0:
                    names.add(part.strip().split("::")[0])
                    part = ""
                    continue
                if depth == 0:
                    part += ch
            if part.strip():
                names.add(part.strip().split("::")[0])
        else:
            names.add(group)
    return {n for n in names if n and n != "self"}


def graph():
    edges = {}
    for dirpath, dirnames, filenames in os.walk(SRC):
        dirnames[:] = [d for d in dirnames if d != "tests"]
        for name in filenames:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, SRC)
            if rel in ROOTS:
                continue
            src = top_module(rel)
            with open(path, encoding="utf-8") as f:
                text = strip_tests(f.read())
            for dst in crate_names(text):
                if dst != src:
                    edges.setdefault(src, {}).setdefault(dst, set()).add(rel)
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--graph" in sys.argv:
        for src in sorted(edges):
            print(f"{src} -> {', '.join(sorted(edges[src]))}")
    found = cycles(edges)
    for comp in found:
        members = set(comp)
        print(f"import cycle between top-level modules: {', '.join(comp)}")
        for src in comp:
            for dst, files in sorted(edges.get(src, {}).items()):
                if dst in members:
                    print(f"  {src} -> {dst}: {', '.join(sorted(files))}")
    if found:
        sys.exit(1)
    print("layers: no import cycle between the top-level modules of src/")


if __name__ == "__main__":
    main()
