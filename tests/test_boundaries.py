"""The serving package stays light: no training code or ML frameworks on the request path.

Dynamic: a fresh interpreter imports the serving modules and runs ``learned-router
classify`` (learned scorer requested, so the model-loading path runs too), then reports
which forbidden top-level packages ended up in ``sys.modules``.
Static: no file under ``router_service/`` imports them, at module or function level."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "router_service"
FORBIDDEN = ("torch", "sklearn", "mlflow", "sentence_transformers", "datasets", "training")

_PROBE = """
import contextlib, importlib, io, json, sys
modules = ["router_service.routing", "router_service.features", "router_service.heuristic",
           "router_service.scoring", "router_service.learned", "router_service.commands.classify"]
for name in modules:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # only a module that does not exist yet may be skipped
            raise
from router_service.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(["classify", "--scorer", "learned", "--model-dir", sys.argv[1], "hello world"])
forbidden = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"code": code, "forbidden": forbidden, "stdout": out.getvalue()}))
"""


def test_serving_imports_and_classify_stay_light(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "model"), json.dumps(FORBIDDEN)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert json.loads(report["stdout"])["tier"] in {"local", "primary", "strong"}
    assert report["forbidden"] == []


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module name a file imports: import statements anywhere (module level or inside
    functions) and ``importlib.import_module("...")`` / ``__import__("...")`` with a literal."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                found.append((node.lineno, str(first.value)))
    return found


def _violations(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, name in _imported_names(tree):
            if name.split(".")[0] in FORBIDDEN:
                bad.append(f"{path.relative_to(root.parent)}:{lineno}: imports {name}")
    return bad


def test_no_serving_file_imports_training_or_ml_frameworks() -> None:
    # cli.py names "training.commands" only as a string in COMMAND_MODULES and imports it
    # through a variable, when a training command runs; that is the one allowed edge.
    assert _violations(SERVING) == []


def test_the_static_check_catches_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "router_service"
    pkg.mkdir()
    (pkg / "a.py").write_text("import os\ndef f():\n    import torch.nn\n")
    (pkg / "b.py").write_text("from training.evaluate.metrics import apgr\n")
    (pkg / "c.py").write_text("import importlib\nimportlib.import_module('sklearn.linear_model')\n")
    (pkg / "d.py").write_text("from . import features\nimport numpy\n")
    assert _violations(pkg) == [
        "router_service/a.py:3: imports torch.nn",
        "router_service/b.py:1: imports training.evaluate.metrics",
        "router_service/c.py:2: imports sklearn.linear_model",
    ]


_FAKE_TRAINING_COMMANDS = """
import sys

def register(subparsers):
    parser = subparsers.add_parser("fake-train")
    parser.set_defaults(func=lambda args: 7)
"""

_DISPATCH_PROBE = """
import contextlib, io, sys
from router_service.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    classify = main(["classify", "--scorer", "heuristic", "hi"])
after_classify = "training" in sys.modules
train = main(["fake-train"])
print(classify, after_classify, train, "training.commands" in sys.modules)
"""


def test_cli_imports_training_commands_only_for_training_commands(tmp_path: Path) -> None:
    # A stand-in ``training`` package first on the path: the serving command must not touch
    # it, a training command must be found through it.
    fake = tmp_path / "training"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "commands.py").write_text(_FAKE_TRAINING_COMMANDS)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + _DISPATCH_PROBE,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "False", "7", "True"]
