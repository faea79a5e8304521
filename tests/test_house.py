"""The shape of the code base, checked the way a reviewer would: no import cycles (counting
imports inside functions), one module that opens the ledger, one module that parses
terraform's arguments, no module over 500 lines, no function over 80 lines, and every
package says what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tfaudit"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    assert (PKG / "__init__.py").is_file(), f"the package is not at {PKG}"
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every tfaudit module `name` imports, at any depth (function bodies included)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            # the deepest known module the import names (a package's submodule, or the package)
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("tfaudit"):
                found.add(t)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        deps = _imports(name, path, known)
        # importing a submodule runs its package's __init__: that is not a cycle of ours
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_module_over_500_lines() -> None:
    big = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    over = {n: k for n, k in big.items() if k > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines: {over}"


def test_no_function_over_80_lines() -> None:
    over = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    over.append(f"{name}.{node.name} ({length})")
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_every_package_opens_with_a_docstring_saying_its_role() -> None:
    missing = [str(p.relative_to(PKG.parent)) for p in PKG.rglob("__init__.py")
               if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()]
    assert not missing, f"packages without a docstring: {missing}"


def _calls_open(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in ("open", "fdopen") or (isinstance(f, ast.Attribute) and f.attr == "open"
                                               and isinstance(f.value, ast.Name) and f.value.id == "os"):
                return True
    return False


def test_only_the_file_store_opens_the_ledger_file() -> None:
    """Modules that mention the ledger and open files: only the file store may be among them."""
    offenders = []
    for name, path in _modules().items():
        text = path.read_text()
        if name == "tfaudit.trail.ledger" or "ledger" not in text.lower():
            continue
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "open", "read_bytes", "read_text") and "ledger" in ast.unparse(node.func.value).lower():
                offenders.append(f"{name}: {ast.unparse(node)[:80]}")
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
                fname = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                if fname in ("open",) and node.args and "ledger" in ast.unparse(node.args[0]).lower():
                    offenders.append(f"{name}: {ast.unparse(node)[:80]}")
    assert not offenders, "modules opening the ledger file themselves: " + "; ".join(offenders)
