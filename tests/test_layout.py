"""Project-wide rules: the layering of the top-level packages (only the Ray layer and the
entrypoints import Ray; the library imports nothing above it; no import circles in the library), no
two classes share a name, and the CPU stack's torchvision workaround works."""
import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edit_rl", "actors", "jobs", "experiments", "examples", "benchmarks")
# experiments/, examples/ and benchmarks/ drive the system through actors/ and jobs/ (benchmarks/
# reads the object store, deploys services and pushes weights through actors/ too).
RAY_IMPORTERS = ("actors", "jobs")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every module an import statement in ``path`` names (top level or inside a function), with
    its line; relative imports resolved against the file's package."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out += [(base, node.lineno)] + [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return out


def sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def offenders(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted({f"{p.relative_to(ROOT)}:{line} imports {name}" for p in sources(*packages)
                   for name, line in imported_modules(p)
                   if any(name == f or name.startswith(f + ".") for f in forbidden)})


def test_only_the_ray_layer_and_entrypoints_import_ray():
    others = tuple(p for p in PACKAGES if p not in RAY_IMPORTERS)
    assert others == ("edit_rl", "experiments", "examples", "benchmarks")
    assert offenders(others, ("ray",)) == []
    # the check sees an import inside a function too (ray_session.disconnect imports ray.serve)
    assert any(o.startswith("actors/ray_session.py:") and o.endswith(" imports ray.serve")
               for o in offenders(RAY_IMPORTERS, ("ray",)))


def test_the_library_imports_nothing_above_it():
    assert offenders(("edit_rl",), ("actors", "jobs", "experiments", "examples", "benchmarks")) == []


def test_the_ray_layer_imports_no_entrypoint_research_demo_or_benchmark():
    assert offenders(("actors",), ("jobs", "experiments", "examples", "benchmarks")) == []


def test_the_library_has_no_import_circle():
    modules = {module_name(p): p for p in sources("edit_rl")}
    graph = {m: {n for n, _ in imported_modules(p) if n in modules and n != m} for m, p in modules.items()}
    circles = []
    for start in modules:  # a circle through ``start``: a path from one of its imports back to it
        seen, stack = set(), [(n, (start, n)) for n in graph[start]]
        while stack:
            node, path = stack.pop()
            if node == start:
                circles.append(" -> ".join(path))
                break
            if node not in seen:
                seen.add(node)
                stack += [(n, (*path, n)) for n in graph[node]]
    assert circles == []


def test_no_two_classes_share_a_name():
    where = defaultdict(list)
    for path in sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert {name: places for name, places in where.items() if len(places) > 1} == {}


def test_edit_rl_source_has_no_ray_import():
    offenders = []
    for path in sorted((ROOT / "edit_rl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names
                          if n == "ray" or n.startswith("ray.")]
    assert offenders == [], f"edit_rl must not import ray: {offenders}"


def test_importing_every_edit_rl_module_loads_no_ray():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in sorted((ROOT / "edit_rl").rglob("*.py"))]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_torchvision_imports_beside_cpu_torch():
    code = ("import torch, torchvision\n"
            "from torchvision.transforms import functional as F\n"
            "print(tuple(F.resize(torch.rand(3, 8, 8), [4, 4], antialias=True).shape))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(3, 4, 4)"
