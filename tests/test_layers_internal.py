"""Internal layering over the AST: imports inside meshlab/ only point down the floors of
docs/architecture.md, plus the rules a floor alone cannot say (runners never import the store)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "meshlab"

# Top-level module or subpackage of meshlab -> floor. A new module must be placed here.
FLOORS: dict[str, int] = {
    "errors": 0, "units": 0, "_version": 0, "_timerfd": 0, "registry": 0, "_limits": 0,
    "redaction": 0,
    "profile": 1, "shape": 1, "results": 1, "policy": 1, "topology": 1, "host": 1, "progress": 1,
    "run_schema": 1, "dimensions": 1, "slo": 1, "wire": 1,
    "runners": 2, "k8s": 2, "playground": 2, "store": 2, "formats": 2, "analysis": 2,
    "meshes": 3, "environments": 3,
    "experiment": 4, "crosscheck": 4, "report": 4,
    "cli": 5, "widgets": 5, "__main__": 5, "__init__": 5,
}

# Same-floor (or lower) imports that are still wrong: importer -> what it must never import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "runners": frozenset({"store", "k8s", "playground", "analysis"}),
    "k8s": frozenset({"store", "playground", "runners", "analysis"}),
    "store": frozenset({"analysis", "runners", "k8s", "playground"}),
    "analysis": frozenset({"store", "runners", "k8s", "playground"}),
    "formats": frozenset({"k8s", "playground", "runners"}),
    "meshes": frozenset({"runners", "store", "environments"}),
}


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _unit(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) == 1 else rel.parts[0]


def _imported(node: ast.AST, module_parts: tuple[str, ...],
              root: Path) -> list[tuple[str, bool]]:
    """(meshlab unit imported, names the package face) for one import node."""
    out: list[tuple[str, bool]] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "meshlab":
                out.append((parts[1], False) if len(parts) > 1 else ("__init__", True))
    elif isinstance(node, ast.ImportFrom):
        if node.level:     # relative: resolve against the importing module's package
            base = list(module_parts[:-node.level]) if node.level <= len(module_parts) else []
            parts = [*base, *(node.module or "").split(".")] if node.module else base
            parts = [p for p in parts if p]
            parts = ["meshlab", *parts]
        else:
            parts = (node.module or "").split(".")
        if parts and parts[0] == "meshlab":
            if len(parts) > 1:
                out.append((parts[1], False))
            else:          # `from meshlab import x`: a submodule is fine, a face name is not
                for alias in node.names:
                    face = alias.name not in FLOORS and not (root / alias.name).exists() \
                        and not (root / f"{alias.name}.py").exists()
                    out.append(("__init__", True) if face else (alias.name, False))
    return out


def check_tree(root: Path) -> list[Violation]:
    """Every layering violation in the package rooted at `root` (a folder named like meshlab)."""
    problems: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        unit = _unit(path, root)
        rel = str(path.relative_to(root.parent))
        if unit not in FLOORS:
            problems.append(Violation(rel, 1, f"module {unit!r} has no floor; place it in FLOORS "
                                      "(tests/test_layers_internal.py) and docs/architecture.md"))
            continue
        module_parts = path.relative_to(root).with_suffix("").parts
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target, face in _imported(node, module_parts, root):
                line = getattr(node, "lineno", 1)
                if face and unit not in ("__init__", "__main__", "cli"):
                    problems.append(Violation(rel, line, "imports the package face meshlab/"
                                              "__init__; import the defining module instead"))
                    continue
                if target == unit or target not in FLOORS:
                    continue
                if FLOORS[target] > FLOORS[unit]:
                    problems.append(Violation(rel, line, f"{unit} (L{FLOORS[unit]}) imports "
                                              f"{target} (L{FLOORS[target]}): imports only "
                                              f"point down"))
                elif target in FORBIDDEN.get(unit, frozenset()):
                    problems.append(Violation(rel, line, f"{unit} must not import {target}"))
    return problems


def test_meshlab_imports_only_point_down() -> None:
    problems = check_tree(PACKAGE)
    assert not problems, "\n".join(map(str, problems))


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "meshlab"
    for name, text in files.items():
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(("files", "expected"), [
    ({"profile.py": "from meshlab.store import Store\n"}, "profile (L1) imports store (L2)"),
    ({"runners/wrk.py": "from meshlab.store import Store\n"}, "runners must not import store"),
    ({"k8s/cluster.py": "def f():\n    from meshlab.meshes.istio import IstioMesh\n"},
     "k8s (L2) imports meshes (L3)"),
    ({"meshes/istio.py": "import meshlab.runners.native\n"}, "meshes must not import runners"),
    ({"store/_rows.py": "from meshlab.analysis import frames\n"}, "store must not import analysis"),
    ({"results.py": "from meshlab import __version__\n"}, "imports the package face"),
    ({"runners/_x.py": "from ..experiment import run_profile\n"},
     "runners (L2) imports experiment (L4)"),
    ({"gadget.py": "x = 1\n"}, "has no floor"),
])
def test_a_planted_violation_is_caught(tmp_path: Path, files: dict[str, str],
                                       expected: str) -> None:
    problems = check_tree(_plant(tmp_path, files))
    assert any(expected in str(p) for p in problems), problems


def test_downward_imports_pass(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"cli/core.py": "from meshlab.experiment import run_profile\n",
                             "runners/wrk.py": "from meshlab.results import RunResult\n"
                                               "from meshlab import errors\n"})
    assert check_tree(root) == []
