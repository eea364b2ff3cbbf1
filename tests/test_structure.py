"""Figures from the code, read with ``ast`` over ``poolcli/`` (the structure issue's "done when"):
no import cycle, no use of another module's ``_private`` names, no function over 80 lines
(docstring excluded), no module over 700 lines, each file signature written once.

``python tests/test_structure.py`` prints the figures; the tests assert them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "poolcli"
MAX_FUNCTION = 80
MAX_MODULE = 700
SIGNATURES = {  # every format's magic bytes
    b"\x89PNG\r\n\x1a\n": "PNG", b"\x93NUMPY": "npy", b"II*\0": "TIFF", b"MM\0*": "TIFF", b"II+\0": "BigTIFF",
    b"MM\0+": "BigTIFF", b"\xff\xd8\xff": "JPEG", b"RIFF": "WebP", b"BM": "BMP",
}  # fmt: skip


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def _target(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute module an ``import from`` names (relative imports resolved)."""
    if not node.level:
        return node.module
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports() -> dict[str, dict[str, set[str]]]:
    """Per module: {imported poolcli module: names taken from it} (function-level imports too)."""
    found: dict[str, dict[str, set[str]]] = {m: {} for m in MODULES}
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _target(module, node)
                if not target or not target.split(".")[0] == "poolcli":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in MODULES:  # `from . import io`: the module itself
                        found[module].setdefault(sub, set())
                    elif target in MODULES:
                        found[module].setdefault(target, set()).add(alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES:
                        found[module].setdefault(alias.name, set())
    return found


def cycles() -> list[list[str]]:
    """Every import cycle between poolcli's modules (each found once, from its smallest name)."""
    graph = {m: set(t) - {m} for m, t in imports().items()}
    out = []

    def walk(start: str, here: str, path: list[str]) -> None:
        for nxt in sorted(graph[here]):
            if nxt == start:
                out.append(path[:])
            elif nxt > start and nxt not in path:
                walk(start, nxt, path + [nxt])

    for m in sorted(graph):
        walk(m, m, [m])
    return out


def private_uses() -> list[str]:
    """``module: name`` for each ``_private`` name one poolcli module takes from another, by
    import or as an attribute of an imported module."""
    found = []
    for module, taken in imports().items():
        for target, names in taken.items():
            found += [f"{module}: {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
        aliases = {}
        for node in ast.walk(TREES[module]):
            if isinstance(node, ast.ImportFrom):
                target = _target(module, node) or ""
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        for node in ast.walk(TREES[module]):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):  # fmt: skip
                found.append(f"{module}: {aliases[node.value.id]}.{node.attr}")
    return sorted(set(found))


def long_functions() -> list[tuple[str, int]]:
    """(module.function, lines) of every function longer than :data:`MAX_FUNCTION` lines, its
    docstring left out."""
    found = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]
            if body and body[-1].end_lineno - body[0].lineno + 1 > MAX_FUNCTION:
                found.append((f"{module}.{node.name}", body[-1].end_lineno - body[0].lineno + 1))
    return found


def long_modules() -> list[tuple[str, int]]:
    return [(m, n) for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE]


def signatures() -> dict[bytes, list[str]]:
    """Where each file signature is written as a literal."""
    found: dict[bytes, list[str]] = {sig: [] for sig in SIGNATURES}
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in found:
                found[node.value].append(f"{module}:{node.lineno}")
    return found


def test_no_import_cycle():
    assert cycles() == []


def test_no_module_uses_another_modules_private_names():
    assert private_uses() == []


def test_no_function_over_80_lines():
    assert long_functions() == []


def test_no_module_over_700_lines():
    assert long_modules() == []


def test_each_file_signature_is_written_once():
    assert {sig: where for sig, where in signatures().items() if len(where) != 1} == {}


def test_the_readme_names_every_module():
    """The README's "How the code is laid out" names each module (by path, or by name beside its
    folder's path) and no module that is gone."""
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("### How the code is laid out", 1)[1].split("\n#", 1)[0]
    missing = []
    for path in MODULES.values():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        folder = rel.rsplit("/", 1)[0] + "/"
        if f"`{rel}`" not in section and not (path.stem in section and f"`{folder}" in section):
            missing.append(rel)
    assert missing == []
    import re

    named = set(re.findall(r"`(poolcli/[\w/]+\.py)`", section))
    assert {n for n in named if not (PACKAGE.parent / n).exists()} == set()


def test_the_checks_can_fail(tmp_path):
    """The figures are measured, not assumed: a cycle, a private use and a long function in a
    made-up tree are each found."""
    global PACKAGE, MODULES, TREES
    pkg = tmp_path / "poolcli"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import _hidden\n\n\ndef f():\n" + "    x = 1\n" * 81)
    (pkg / "b.py").write_text("from . import a\n_hidden = a.f\n")
    saved = PACKAGE, MODULES, TREES
    try:
        PACKAGE = pkg
        MODULES = {_name(p): p for p in sorted(pkg.rglob("*.py"))}
        TREES = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}
        assert cycles() == [["poolcli.a", "poolcli.b"]]
        assert private_uses() == ["poolcli.a: poolcli.b._hidden"]
        assert long_functions() == [("poolcli.a.f", 81)]
    finally:
        PACKAGE, MODULES, TREES = saved


if __name__ == "__main__":
    print(f"modules: {len(MODULES)}, longest: {max((len(p.read_text().splitlines()), m) for m, p in MODULES.items())}")
    print(f"import cycles: {cycles() or 'none'}")
    print(f"private names used across modules: {private_uses() or 'none'}")
    print(f"functions over {MAX_FUNCTION} lines: {long_functions() or 'none'}")
    print(f"modules over {MAX_MODULE} lines: {long_modules() or 'none'}")
    for sig, where in signatures().items():
        print(f"signature {SIGNATURES[sig]} {sig!r}: {', '.join(where) or 'nowhere'}")
