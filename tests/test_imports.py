"""No import cycles among the toolkit's modules: every import, at the top of a module or
inside a function, points one way."""

from __future__ import annotations

import ast

from conftest import ROOT

PACKAGE = "sparkify"


def project_modules() -> dict[str, ast.Module]:
    files = [*ROOT.glob("*.py"), *(ROOT / PACKAGE).glob("*.py"), *(ROOT / "tools").glob("*.py")]
    modules = {}
    for path in files:
        name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        modules[name.removesuffix(".__init__")] = ast.parse(path.read_text(encoding="utf-8"))
    return modules


def imports_of(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The project modules name imports, wherever in the module the import stands."""
    package = name.rpartition(".")[0] if "." in name else ""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(filter(None, [package, base]))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # from . import report
    return {module for module in found if module in known and module != name}


def test_no_module_imports_itself_back():
    modules = project_modules()
    graph = {name: imports_of(name, tree, set(modules)) for name, tree in modules.items()}
    assert graph["sparkify.insights"], "the import graph was not read"
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in done:
                visit(target, path + [target])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert cycles == [], "import cycles: " + "; ".join(cycles)


# The modules that run a load or create the schema ask their warehouse's dialect
# (sparkify/dialects.py) and never which engine they are on.
ENGINE_BLIND = ["sparkify.pipeline", "sparkify.loadlock", "sparkify.warehouse", "sparkify.dryrun", "sql_queries",
                "quality_checks"]
ENGINE_NAMES = {"postgres", "redshift"}


def engine_questions(tree: ast.Module) -> list[str]:
    """Comparisons with a dialect's name, or of anything called dialect. (Whether to start
    the embedded server is how to connect, not which SQL to send.)"""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = [o.value for o in operands if isinstance(o, ast.Constant) and o.value in ENGINE_NAMES]
        asked = [o.attr for o in operands if isinstance(o, ast.Attribute) and o.attr == "dialect"]
        if names or asked:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_pipeline_never_asks_which_engine_it_is_on():
    modules = project_modules()
    assert engine_questions(ast.parse('if wh.dialect == "redshift": pass')), "the check finds nothing"
    asked = {name: engine_questions(modules[name]) for name in ENGINE_BLIND}
    assert asked == {name: [] for name in ENGINE_BLIND}
