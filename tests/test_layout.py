"""Project-wide rules: the library imports no Ray; the CPU stack's torchvision workaround works."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
