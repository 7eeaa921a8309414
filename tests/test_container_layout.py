"""The Dockerfile's image, reproduced without Docker (there is no daemon here).

What the image does, step by step, read from the Dockerfile itself: copy the sources it
copies and ``pip install --no-deps .`` them (a regular, non-editable install), copy the
model and the policies to ``/app``, set its ``ENV``, and run its ``CMD`` from a working
directory nobody may write to. ``/app`` and the data volume map to temporary directories;
the interpreter runs with ``-S`` so this checkout's editable install cannot leak in (the
dependencies come from this environment's site-packages, in order after the install).

The router must start, load the learned model (not fall back to the heuristic), answer,
write its decision log under ``ROUTER_DATA_DIR`` and nothing in the working directory."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx

from fakes.process import free_port, served

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def dockerfile() -> tuple[dict[str, str], list[str], list[tuple[list[str], str]]]:
    """-> (ENV, CMD, COPY (sources, destination) pairs) of the runtime stage."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    cmd: list[str] = []
    copies: list[tuple[list[str], str]] = []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "COPY":
            *sources, dst = rest.split()
            copies.append((sources, dst))
    return env, cmd, copies


def test_the_image_layout_starts_and_serves_the_learned_model(tmp_path: Path) -> None:
    env_vars, cmd, copies = dockerfile()
    assert cmd[:2] == ["learned-router", "serve"], cmd
    app, data, workdir = tmp_path / "app", tmp_path / "data", tmp_path / "readonly-cwd"
    for d in (app, data, workdir):
        d.mkdir()

    # COPY ... (relative destinations are under WORKDIR /app), then pip install --no-deps .
    for sources, dst in copies:
        target = app / dst if not dst.startswith("/") else tmp_path / dst.lstrip("/")
        for src in sources:
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, dirs_exist_ok=True)
            else:
                into = target / src if dst.endswith("/") else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / src, into)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-compile", "--target", str(site), str(app)],
        check=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    for source_only in ("router_service", "training", "pyproject.toml", "README.md"):
        path = app / source_only  # the image keeps them too, but nothing may import them
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    def image_path(value: str) -> str:
        for prefix, local in (("/app", app), ("/var/lib/learned-router", data)):
            if value == prefix or value.startswith(prefix + "/"):
                return str(local) + value[len(prefix) :]
        return value

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update({k: image_path(v) for k, v in env_vars.items()})
    env["ROUTER_PORT"] = str(port)
    env["ROUTER_HOST"] = "127.0.0.1"
    assert env["ROUTER_PROBE_PORT"] == "8090"  # the image's probe listener
    probe_port = free_port()
    env["ROUTER_PROBE_PORT"], env["ROUTER_PROBE_HOST"] = str(probe_port), "127.0.0.1"
    env["PYTHONPATH"] = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])
    args = [a for a in cmd[2:] if a not in ("0.0.0.0", "8080")]
    args = [a for a in args if a not in ("--host", "--port")]
    entry = "import sys; from router_service.cli import main; sys.exit(main())"  # the script
    command = [sys.executable, "-S", "-c", entry, "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), *args]
    where = subprocess.run(
        [sys.executable, "-S", "-c", "import router_service; print(router_service.__file__)"],
        env=env, cwd=workdir, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(site), where  # the installed copy, not this checkout
    os.chmod(workdir, 0o555)
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "router.log"
    try:
        with served(command, url, env=env, cwd=workdir, log_path=log, ready_path="/health"):
            health = httpx.get(f"{url}/health", timeout=2).json()
            assert health["scorer"]["name"] == "learned", health
            assert health["scorer"]["fallback_reason"] is None
            probe = httpx.get(f"http://127.0.0.1:{probe_port}/health", timeout=2)
            assert probe.json() == {"status": health["status"]}
            r = httpx.post(f"{url}/v1/classify", json={"prompt": "write a haiku about rain"})
            assert r.status_code == 200 and r.json()["scorer"] == "learned"
            for asset in ("", "/dashboard.js", "/dashboard.css"):  # package data installed
                page = httpx.get(f"{url}/dashboard{asset}", timeout=2)
                assert page.status_code == 200 and len(page.content) > 500, asset
    finally:
        os.chmod(workdir, 0o755)
    assert list(workdir.iterdir()) == []  # nothing written where it runs
    assert not list(site.rglob("__pycache__"))  # PYTHONDONTWRITEBYTECODE honoured
    db = data / "router_logs.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] >= 1
    assert "Traceback" not in log.read_text()
