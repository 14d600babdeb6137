"""The project's own import graph, read from the source (no imports run).

Every `import recall...` and `from recall... import` counts, lazy ones inside functions
included: a stage's output depends on a module whether it is imported at the top or when a
function runs. Shared by the stage-deps test and the structure test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_path(name: str, root: Path = ROOT) -> Path | None:
    """recall.judge.rules -> recall/judge/rules.py; a package -> its __init__.py."""
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def direct_imports(path: Path, root: Path = ROOT) -> set[str]:
    """The recall modules `path` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "recall"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "recall":
            found.add(node.module)
            # `from recall.judge import rules` imports the module recall.judge.rules
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if module_path(f"{node.module}.{a.name}", root)}
    return {name for name in found if module_path(name, root)}


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the recall modules it imports, for recall/ and pipelines/."""
    files = sorted(root.glob("recall/**/*.py")) + sorted(root.glob("pipelines/*.py"))
    # a package importing its own submodules (`from recall.datasets import nq_open`) is no cycle
    return {(name := module_name(f, root)): direct_imports(f, root) - {name} for f in files}


def closure(start: str, edges: dict[str, set[str]]) -> dict[str, list[str]]:
    """Every module reachable from `start`, each with one import chain that reaches it."""
    chains = {start: [start]}
    todo = [start]
    while todo:
        here = todo.pop()
        for nxt in sorted(edges.get(here, ())):
            if nxt not in chains:
                chains[nxt] = chains[here] + [nxt]
                todo.append(nxt)
    return chains


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out
