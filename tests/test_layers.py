"""Dependencies run one way: every import of the package, imports inside functions included,
points down the layer order that generator/__init__.py declares (LAYERS), and no set of
modules imports itself round in a cycle. The checker is tested on planted packages too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "generator"


def declared_layers(package: Path) -> tuple[str, ...]:
    """LAYERS from the package's __init__.py, read without importing it."""
    tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "LAYERS"
                                                for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("generator/__init__.py declares no LAYERS")


def modules(package: Path) -> dict[str, Path]:
    """dotted name (relative to the package; '' for its __init__) -> file."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package).with_suffix("").parts
        if rel[-1] == "__init__":
            rel = rel[:-1]
        out[".".join(rel)] = path
    return out


def imports(name: str, path: Path, known: set[str], package_name: str) -> set[str]:
    """The package modules ``name`` imports, anywhere in the file (ast, so strings and comments
    do not count; function-level and TYPE_CHECKING imports do)."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if name else []
    base_package = here if is_package else here[:-1]
    found: set[str] = set()

    def add(target: str, names: list[str]) -> None:
        for n in names:
            sub = f"{target}.{n}" if target else n
            if sub in known:
                found.add(sub)
                continue
            if target in known or target == "":
                found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level:
                if node.level - 1 > len(base_package):
                    continue
                parts = base_package[:len(base_package) - (node.level - 1)]
                target = ".".join(parts + (node.module.split(".") if node.module else []))
                add(target, names)
            elif node.module and (node.module == package_name
                                  or node.module.startswith(package_name + ".")):
                add(node.module[len(package_name) + 1:], names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(package_name + "."):
                    parts = alias.name.split(".")[1:]
                    # `import generator.a.b` runs a and a.b
                    for i in range(1, len(parts) + 1):
                        if ".".join(parts[:i]) in known:
                            found.add(".".join(parts[:i]))
    found.discard(name)
    return found


def layer_of(name: str, layers: tuple[str, ...]) -> int:
    top = name.split(".")[0]
    if top == "":
        return -1                   # the package's __init__: the version and LAYERS, no code
    if top == "__main__":
        return len(layers)          # `python -m generator`: the top
    if top not in layers:
        raise AssertionError(f"module generator/{name.replace('.', '/')} is in no layer: "
                             f"add {top!r} to LAYERS")
    return layers.index(top)


def problems(package: Path, package_name: str = "generator") -> list[str]:
    """Every import that points up the layers, and every import cycle, in ``package``."""
    layers = declared_layers(package)
    mods = modules(package)
    graph = {name: imports(name, path, set(mods), package_name) for name, path in mods.items()}
    out = []
    for name in sorted(graph):
        layer_of(name, layers)
        for target in sorted(graph[name]):
            if layer_of(target, layers) > layer_of(name, layers):
                out.append(f"{name or package_name} imports {target} (a higher layer)")
    out.extend(f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a
    closed path through it, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
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
            if len(component) > 1:
                found.append(_closed_path(sorted(component), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _closed_path(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A cycle through the component's first module, for the message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path + [start]
        step = next((w for w in nxt if w not in seen), None)
        if step is None:
            return path + [start]
        path.append(step)
        seen.add(step)


# ---------------------------------------------------------------------------------------------

def test_the_package_imports_only_down_its_layers_and_has_no_cycle():
    assert problems(PACKAGE) == []


def test_every_module_sits_in_a_declared_layer():
    layers = declared_layers(PACKAGE)
    assert layers[0] == "core" and layers[-2:] == ("serve", "cli")
    for name in modules(PACKAGE):
        layer_of(name, layers)


def test_imports_inside_functions_are_seen():
    graph = {name: imports(name, path, set(modules(PACKAGE)), "generator")
             for name, path in modules(PACKAGE).items()}
    # The build command imports publish.build inside its function only.
    assert "publish.build" in graph["cli.pages"]
    # The science imports the numeric pins at module level, the errors inside a function.
    assert "core.errors" in graph["science.audit"]


def _package(tmp_path: Path, files: dict[str, str], layers=("low", "high")) -> Path:
    pkg = tmp_path / "generator"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"LAYERS = {layers!r}\n")
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent != pkg and not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").write_text("")
        path.write_text(text)
    return pkg


def test_a_planted_cycle_is_found_even_through_a_function_level_import(tmp_path):
    pkg = _package(tmp_path, {
        "low/a.py": "from .b import x\n",
        "low/b.py": "def f():\n    from . import c\n",
        "low/c.py": "from generator.low.a import y\n",
        "low/ok.py": "from .a import z\n",
    })
    assert problems(pkg) == ["import cycle: low.a -> low.b -> low.c -> low.a"]


def test_a_planted_upward_import_is_found(tmp_path):
    pkg = _package(tmp_path, {
        "low/a.py": "import os\n\ndef g():\n    from ..high import b\n",
        "high/b.py": "x = 1\n",
    })
    assert problems(pkg) == ["low.a imports high.b (a higher layer)"]


def test_a_module_outside_the_layers_is_refused(tmp_path):
    pkg = _package(tmp_path, {"stray/m.py": "x = 1\n"})
    with pytest.raises(AssertionError, match="generator/stray is in no layer"):
        problems(pkg)
