"""`meshlab/k8s/` is a plain cluster client: it imports nothing from the mesh, environment,
runner or store layers and writes no mesh's name; those facts reach it as parameters."""

from __future__ import annotations

import ast
from pathlib import Path

import meshlab
from meshlab.meshes.detect import kubernetes_meshes

K8S = Path(meshlab.__file__).parent / "k8s"
FORBIDDEN = ("meshlab.meshes", "meshlab.environments", "meshlab.runners", "meshlab.store")


def _imported(tree: ast.Module, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import; relative ones resolved against `package`."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            # `from meshlab import meshes` imports meshlab.meshes too
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            out.append((node.lineno, base))
    return out


def layer_violations(root: Path, package: str = "meshlab.k8s") -> list[str]:
    """`file:line imports module` for every import of a forbidden layer under `root`."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        sub = path.relative_to(root).with_suffix("").parts
        pkg = ".".join([package, *sub[:-1]])
        for line, module in _imported(ast.parse(path.read_text(), str(path)), pkg):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{path.name}:{line} imports {module}")
    return sorted(set(bad))


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def mesh_words(root: Path, words: set[str]) -> list[str]:
    """`file:line 'text'` for string literals (docstrings aside) naming one of `words`."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in skip
                    and any(w in node.value.lower() for w in words)):
                bad.append(f"{path.name}:{node.lineno} {node.value[:60]!r}")
    return bad


def _mesh_vocabulary() -> set[str]:
    """Every Kubernetes mesh's name and sidecar container names, from the registry."""
    meshes = kubernetes_meshes()
    assert meshes, "no Kubernetes mesh registered"
    return {m.name for m in meshes} | {c for m in meshes for c in m.sidecar_containers}


def test_k8s_imports_no_higher_layer() -> None:
    assert layer_violations(K8S) == []


def test_k8s_names_no_mesh() -> None:
    assert mesh_words(K8S, _mesh_vocabulary()) == []


def test_the_checks_catch_a_planted_violation(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text('"""istio in a docstring is fine."""\n'
                                   "from meshlab.meshes.base import get_mesh\n"
                                   "import meshlab.store\n")
    (tmp_path / "sub" / "b.py").write_text("from ...environments import kubernetes\n"
                                           "from meshlab import runners\n"
                                           "SIDECARS = ('istio-proxy',)\n")
    assert layer_violations(tmp_path) == [
        "a.py:2 imports meshlab.meshes.base", "a.py:2 imports meshlab.meshes.base.get_mesh",
        "a.py:3 imports meshlab.store", "b.py:1 imports meshlab.environments",
        "b.py:1 imports meshlab.environments.kubernetes", "b.py:2 imports meshlab.runners"]
    assert mesh_words(tmp_path, _mesh_vocabulary()) == ["b.py:3 'istio-proxy'"]
