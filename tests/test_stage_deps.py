"""dvc.yaml's deps are the stage scripts' transitive recall/ imports, no more and no fewer.

`dvc repro` reruns a stage only when a listed dep changes, so a module missing from the
list leaves a stale result that DVC calls up to date; a module listed but never imported
reruns a stage for nothing. The exemptions are named once, in dvc.yaml's header comment.
"""

from __future__ import annotations

import ast
import re

import pytest
import yaml
from dataflow import escapes
from import_graph import ROOT, closure, graph, module_name, module_path


def exempt_paths(dvc_text: str) -> set[str]:
    """The recall/ files dvc.yaml's leading comment block says are not listed on purpose."""
    header = []
    for line in dvc_text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    start = text.find("Not listed on purpose")
    assert start >= 0, "dvc.yaml's header must say which recall/ modules are not listed on purpose"
    return set(re.findall(r"recall/[\w/]+\.py", text[start:]))


def inert(path) -> bool:
    """A package marker with nothing that could change an output: a docstring and constants."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, (ast.Expr, ast.Assign)) and isinstance(n.value, ast.Constant)
               for n in body)


def stages(spec: dict) -> dict[str, dict]:
    """Stage name -> its definition (a foreach stage's `do` block)."""
    return {name: body.get("do", body) for name, body in spec["stages"].items()}


def problems(spec: dict, exempt: set[str], root=ROOT) -> list[str]:
    edges = graph(root)
    # What only an exempt module imports is exempt with it (tracking.py's environment.py).
    for module in edges:
        if module_path(module, root).relative_to(root).as_posix() in exempt:
            edges[module] = set()
    out = []
    for name, stage in stages(spec).items():
        script = re.search(r"pipelines/\w+\.py", stage["cmd"]).group(0)
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        listed = {d.rstrip("/") for d in deps if d.startswith(("recall", "pipelines"))}
        if script not in listed:
            out.append(f"stage {name}: dvc.yaml lacks its own script {script}")
        chains = closure(module_name(root / script, root), edges)
        used = {}
        for module, chain in chains.items():
            path = module_path(module, root)
            rel = path.relative_to(root).as_posix()
            used[rel] = chain
            if rel.startswith("pipelines/") or rel in exempt or inert(path):
                continue
            if not any(rel == d or rel.startswith(d + "/") for d in listed):
                out.append(f"stage {name}: dvc.yaml lacks {rel} (imported via "
                           f"{' -> '.join(chain)})")
        for dep in sorted(listed - {script}):
            if not (root / dep).exists():
                out.append(f"stage {name}: dvc.yaml lists {dep}, which does not exist")
            elif not any(rel == dep or rel.startswith(dep + "/") for rel in used):
                out.append(f"stage {name}: dvc.yaml lists {dep}, which {script} never imports")
    return out


def real_spec() -> tuple[dict, set[str]]:
    text = (ROOT / "dvc.yaml").read_text()
    return yaml.safe_load(text), exempt_paths(text)


def test_every_stage_lists_exactly_the_recall_modules_its_script_imports():
    spec, exempt = real_spec()
    assert problems(spec, exempt) == []


def test_exemptions_are_real_modules_that_cannot_change_an_output():
    _, exempt = real_spec()
    assert exempt == {"recall/bounds.py", "recall/errors.py", "recall/tracking.py",
                      "recall/__init__.py", "recall/judge/__init__.py"}
    for rel in exempt:
        assert (ROOT / rel).is_file(), rel
        if rel.endswith("__init__.py"):
            assert inert(ROOT / rel), f"{rel} has code: it is a dep, not an exemption"


def exemption_escapes(spec: dict, exempt: set[str], root=ROOT) -> list[str]:
    """Per stage, every place in the code it runs where a value from an exempt module that
    the stage does not list could reach an output (tests/dataflow.py's rule)."""
    edges = graph(root)
    out = []
    for name, stage in stages(spec).items():
        script = re.search(r"pipelines/\w+\.py", stage["cmd"]).group(0)
        listed = {d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])}
        unlisted = {module_name(root / rel, root) for rel in exempt - listed
                    if not rel.endswith("__init__.py")}
        for module in closure(module_name(root / script, root), edges):
            path = module_path(module, root)
            if module in unlisted or path.relative_to(root).as_posix() in exempt:
                continue
            out += [f"stage {name}: {hit}" for hit in escapes(path, unlisted, root)]
    return sorted(set(out))


def test_no_value_of_an_unlisted_module_reaches_a_stage_output():
    spec, exempt = real_spec()
    assert exemption_escapes(spec, exempt) == []


def test_analyze_without_tracking_in_its_deps_is_caught_by_its_stage_times():
    # The defect this check exists for: the report prints stage times read through
    # recall/tracking.py, so analyze must list it.
    spec, exempt = real_spec()
    body = stages(spec)["analyze"]
    body["deps"] = [d for d in body["deps"] if d != "recall/tracking.py"]
    found = exemption_escapes(spec, exempt)
    assert found and all(f.startswith("stage analyze: pipelines/analyze.py:") for f in found)
    assert any("stage_seconds(run)" in f for f in found), found


@pytest.mark.parametrize("code, escaped", [
    # discarded results, followed names, local helpers, refusals: nothing escapes
    ("with stage_run(p) as run:\n    log(run)\ndef log(r):\n    log_to_parent(r, {})\n", False),
    ("problems = out_of_bounds(p)\nif problems:\n    raise ValueError(problems)\n", False),
    ("run_stage(main)\n", False),
    # a value written, returned, passed out or branched on: each one escapes
    ("Path('o').write_text(tracking_uri(p))\n", True),
    ("def f(p):\n    return tracking_uri(p)\n", True),
    ("with stage_run(p) as run:\n    d = {}\n    d['t'] = stage_seconds(run)\n", True),
    ("problems = out_of_bounds(p)\nif problems:\n    print(problems)\n", True),
    ("with stage_run(p) as run:\n    json.dump(run.info.run_id, fh)\n", True),
])
def test_the_exemption_rule_on_small_programs(tmp_path, code, escaped):
    (tmp_path / "pipelines").mkdir()
    script = tmp_path / "pipelines/s.py"
    script.write_text("from recall.tracking import log_to_parent, stage_run, stage_seconds, "
                      "tracking_uri\nfrom recall.bounds import out_of_bounds\n"
                      "from recall.errors import run_stage\n" + code)
    found = escapes(script, {"recall.tracking", "recall.bounds", "recall.errors"}, tmp_path)
    assert bool(found) == escaped, found


@pytest.mark.parametrize("stage, module", [("validate", "recall/judge/rules.py"),
                                           ("train", "recall/metrics.py"),
                                           ("judge", "recall/world.py")])
def test_a_dvc_yaml_missing_one_module_fails_naming_the_stage_and_module(stage, module):
    spec, exempt = real_spec()
    body = stages(spec)[stage]
    body["deps"] = [d for d in body["deps"] if d != module]
    found = problems(spec, exempt)
    assert len(found) == 1 and found[0].startswith(f"stage {stage}: dvc.yaml lacks {module} "), found


def test_a_module_listed_but_never_imported_is_reported():
    spec, exempt = real_spec()
    stages(spec)["world"]["deps"].append("recall/dedup.py")
    assert problems(spec, exempt) == [
        "stage world: dvc.yaml lists recall/dedup.py, which pipelines/world.py never imports"]


def test_lazy_imports_inside_functions_count(tmp_path):
    (tmp_path / "recall").mkdir()
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "recall/__init__.py").write_text('"""pkg"""\n')
    (tmp_path / "recall/a.py").write_text("def f():\n    from recall import b\n")
    (tmp_path / "recall/b.py").write_text("X = 1\n")
    (tmp_path / "pipelines/s.py").write_text("import recall.a\n")
    spec = {"stages": {"s": {"cmd": "python pipelines/s.py",
                             "deps": ["pipelines/s.py", "recall/a.py"]}}}
    assert problems(spec, set(), tmp_path) == [
        "stage s: dvc.yaml lacks recall/b.py (imported via pipelines.s -> recall.a -> recall.b)"]


STAGE_DIRS = ("data/", "models/", "runs/", "metrics/", "checkpoints/", "plots/", "reports/")
# Not stage paths: micro_model writes a params file naming the judge directory and skips the
# outputs when it copies the project; plan reads the staged base model's config under `root`;
# the sweep CLI is no DVC stage, and its defaults name the stage outputs a sweep starts from.
PATH_LITERALS_ALLOWED = {"recall/micro_model.py", "recall/plan.py", "recall/cli.py"}


def _path_literals(path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant)}
    return [f"{path.relative_to(ROOT)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
            and n.value.startswith(STAGE_DIRS)]


def test_stage_paths_come_from_dvc_yaml_not_from_code():
    files = sorted(ROOT.glob("pipelines/*.py")) + sorted(ROOT.glob("recall/**/*.py"))
    found = [hit for f in files if f.relative_to(ROOT).as_posix() not in PATH_LITERALS_ALLOWED
             for hit in _path_literals(f)]
    assert found == []


def test_no_path_argument_of_a_stage_has_a_default():
    for script in sorted(ROOT.glob("pipelines/*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                kw = {k.arg: k.value for k in node.keywords}
                if isinstance(kw.get("type"), ast.Name) and kw["type"].id == "Path":
                    assert "default" not in kw, \
                        f"{script.name}:{node.lineno}: a path argument takes no default"
