"""STYLE.md's size limits and an acyclic import graph, checked on every module.

ruff has no rule for module or function length, nor for import cycles (lazy imports
included), so they are read from the source here.
"""

from __future__ import annotations

import ast

from import_graph import ROOT, cycles, graph

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SOURCES = ("recall", "pipelines", "benchmarks", "scripts", "tests")


def python_files():
    for top in SOURCES:
        yield from sorted((ROOT / top).rglob("*.py"))


def long_functions(path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # from the def line (decorators excluded) to the last line of the body
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} has {lines} lines")
    return out


def test_no_module_is_over_the_line_limit():
    over = [f"{p.relative_to(ROOT)} has {n} lines" for p in python_files()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert over == [], f"over {MAX_MODULE_LINES} lines: {over}"


def test_no_function_is_over_the_line_limit():
    over = [line for p in python_files() for line in long_functions(p)]
    assert over == [], f"over {MAX_FUNCTION_LINES} lines: {over}"


def test_the_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_lazy_cycle(tmp_path):
    (tmp_path / "recall").mkdir()
    (tmp_path / "recall/__init__.py").write_text("")
    (tmp_path / "recall/a.py").write_text("from recall.b import x\n")
    (tmp_path / "recall/b.py").write_text("def x():\n    from recall import a\n")
    (tmp_path / "recall/c.py").write_text("import recall.a\n")
    assert cycles(graph(tmp_path)) == [["recall.a", "recall.b"]]
