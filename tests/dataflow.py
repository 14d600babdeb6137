"""Where an exempt module's values go, read from the source (no imports run).

dvc.yaml leaves a few recall/ modules out of a stage's deps because they cannot change its
outputs: they only refuse bad input (`bounds`, `errors`) or only write to MLflow
(`tracking`). That holds only while nothing they return reaches what the stage writes. This
module finds every place a value from an exempt module is used in a way that could reach
an output. The allowed uses ("sinks") are:
- a call whose result is discarded (`log_to_parent(run, m)`, `run_stage(main)`), its
  arguments going into the exempt module;
- `with exempt_call(...) as v`: `v` is followed in turn;
- `v = exempt_call(...)`: `v` is followed in turn;
- an argument of a function of the same module whose parameter is followed in turn;
- raising or catching (`raise ConfigError(...)`, `except ConfigError`), and the refusal
  pattern `if problems: raise ...`.
Anything else (a subscript assignment, an argument of another module's function, a return
value, a format string) is an escape, reported as 'file:line: name -> how'.
"""

from __future__ import annotations

import ast
from pathlib import Path


def exempt_names(tree: ast.Module, exempt: set[str]) -> tuple[set[str], set[str]]:
    """(names imported from exempt modules, aliases of exempt modules themselves)."""
    names, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in exempt:
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules |= {a.asname or a.name for a in node.names
                        if f"{node.module}.{a.name}" in exempt}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name in exempt and a.asname}
    return names, modules


def _mentions(node: ast.AST, tainted: set[str], modules: set[str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in tainted:
            return True
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) \
                and sub.value.id in modules:
            return True
    return False


class _Flow:
    def __init__(self, tree: ast.Module, path: str, names: set[str], modules: set[str]):
        self.path, self.names, self.modules = path, names, modules
        self.functions = {n.name: n for n in ast.walk(tree)
                          if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.nodes = list(ast.walk(tree))
        self.escapes: list[str] = []
        self._seen: set[tuple[str, str]] = set()

    def exempt_call(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and _mentions(node.func, self.names, self.modules)

    def check(self, body: list[ast.stmt], tainted: set[str]) -> None:
        """Report every use of `tainted` names (and exempt names) in `body` outside a sink."""
        for stmt in body:
            self._statement(stmt, tainted | self.names)

    def _statement(self, stmt: ast.stmt, tainted: set[str]) -> None:
        def hit(node):
            return node is not None and _mentions(node, tainted, self.modules)

        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return self.check(stmt.body, set())  # names bound outside are not followed in
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Raise, ast.Pass)):
            return None
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            return self._call(stmt.value, tainted)
        if isinstance(stmt, ast.Assign) and hit(stmt.value):
            plain = len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            if plain and (self.exempt_call(stmt.value) or isinstance(stmt.value, ast.Name)):
                return self.check(self._after(stmt), {stmt.targets[0].id})
            return self._escape(stmt, "assigned" if plain else "assigned into a structure")
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            followed = set()
            for item in stmt.items:
                if hit(item.context_expr) and item.optional_vars is not None:
                    if not isinstance(item.optional_vars, ast.Name):
                        return self._escape(stmt, "bound to more than a plain name")
                    followed.add(item.optional_vars.id)
            return self.check(stmt.body, tainted | followed)
        if isinstance(stmt, ast.If):
            if hit(stmt.test) and not (all(isinstance(s, ast.Raise) for s in stmt.body)
                                       and not stmt.orelse):
                self._escape(stmt, "decides a branch that does more than raise")
            self.check(stmt.body, tainted)
            return self.check(stmt.orelse, tainted)
        if isinstance(stmt, ast.Try):
            for block in (stmt.body, stmt.orelse, stmt.finalbody, *(h.body for h in stmt.handlers)):
                self.check(block, tainted)
            return None
        if isinstance(stmt, (ast.For, ast.While)):
            if hit(getattr(stmt, "iter", None) or getattr(stmt, "test", None)):
                self._escape(stmt, "drives a loop")
            return self.check(stmt.body + stmt.orelse, tainted)
        if hit(stmt):
            self._escape(stmt, type(stmt).__name__.lower())
        return None

    def _call(self, call: ast.Call, tainted: set[str]) -> None:
        if self.exempt_call(call):
            return None  # into the exempt module, result discarded
        args = list(call.args) + [k.value for k in call.keywords]
        name = call.func.id if isinstance(call.func, ast.Name) else None
        for i, arg in enumerate(args):
            if not _mentions(arg, tainted, self.modules):
                continue
            local = self.functions.get(name) if name else None
            if local is None or i >= len(call.args) or not isinstance(arg, ast.Name):
                self._escape(call, f"argument of {ast.unparse(call.func)}")
                continue
            param = local.args.args[i].arg
            if (local.name, param) not in self._seen:
                self._seen.add((local.name, param))
                self.check(local.body, {param})

    def _after(self, stmt: ast.stmt) -> list[ast.stmt]:
        """The statements after `stmt` in the block that holds it."""
        for node in self.nodes:
            for block in _bodies(node):
                if stmt in block:
                    return block[block.index(stmt) + 1:]
        return []

    def _escape(self, node: ast.AST, how: str) -> None:
        self.escapes.append(f"{self.path}:{node.lineno}: {ast.unparse(node).splitlines()[0]}"
                            f" -> {how}")


def _bodies(node: ast.AST) -> list[list[ast.stmt]]:
    return [b for b in (getattr(node, f, None) for f in ("body", "orelse", "finalbody"))
            if isinstance(b, list)] + [h.body for h in getattr(node, "handlers", [])]


def escapes(path: Path, exempt: set[str], root: Path) -> list[str]:
    """Every use in `path` of a value from the `exempt` modules (dotted names) that could
    reach an output."""
    tree = ast.parse(path.read_text(), str(path))
    names, modules = exempt_names(tree, exempt)
    if not names and not modules:
        return []
    flow = _Flow(tree, path.relative_to(root).as_posix(), names, modules)
    flow.check(tree.body, set())
    return sorted(set(flow.escapes))  # a name followed from two places is reported once
