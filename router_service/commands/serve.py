"""``learned-router serve``: command-line options + ``ROUTER_*`` environment -> the
OpenAI-compatible router on uvicorn (uvloop + httptools when installed).

    learned-router serve                                   # 127.0.0.1:8080, default policy
    learned-router serve --host 0.0.0.0 --port 9000 --policy policies/mine.yaml
    learned-router serve --workers 2                       # one process per core

Clients then only change their base URL to ``http://HOST:PORT/v1``."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from router_service.policy import PolicyError
from router_service.settings import Settings

# CLI flag -> Settings field; given flags override the environment.
_FLAG_FIELDS = ("host", "port", "policy", "model_dir", "scorer", "database_url")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the OpenAI-compatible routing service",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--host", help="bind address (default 127.0.0.1; $ROUTER_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8080; $ROUTER_PORT)")
    parser.add_argument("--policy", type=Path, help="policy YAML (default policies/default.yaml)")
    parser.add_argument("--model-dir", type=Path, help="exported router model directory")
    parser.add_argument("--scorer", choices=("learned", "heuristic"), help="default: learned")
    parser.add_argument("--database-url", help="decision log database (default: SQLite file)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a reverse proxy)",
    )
    parser.add_argument(
        "--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted by --proxy-headers"
    )
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags that were given override ``ROUTER_*`` variables and defaults."""
    overrides = {f: getattr(args, f) for f in _FLAG_FIELDS if getattr(args, f, None) is not None}
    return Settings(**overrides)


def _fast(module: str, fast: str, fallback: str) -> str:
    return fast if importlib.util.find_spec(module) is not None else fallback


def sqlite_problem(settings: Settings) -> str | None:
    """Why the SQLite decision log cannot be opened at ``settings.sqlite_path`` (None: it
    can, or the log is PostgreSQL). Checked before the server starts, so a read-only
    working directory is one clear line, not a failed start-up with a traceback."""
    if settings.database_url is not None:
        return None
    path = settings.sqlite_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA user_version")
    except (OSError, sqlite3.Error) as exc:
        return (
            f"cannot open the decision log {path} ({exc}); point ROUTER_DATA_DIR (or "
            "ROUTER_SQLITE_PATH) at a writable directory, or set ROUTER_DATABASE_URL"
        )
    return None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from router_service.app import create_app

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"learned-router serve: invalid setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    problem = sqlite_problem(settings)
    if problem is not None:
        print(f"learned-router serve: {problem}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": _fast("uvloop", "uvloop", "asyncio"),
        "http": _fast("httptools", "httptools", "h11"),
        "log_level": args.log_level,
        "access_log": args.access_log,
        # Off unless asked for: the router never reads the client address, and the check
        # costs a middleware pass per request.
        "proxy_headers": args.proxy_headers,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "timeout_keep_alive": 30,
    }
    if args.workers > 1:
        # Each worker builds its own app from the environment: pass the flags through it.
        for name in _FLAG_FIELDS:
            value = getattr(args, name, None)
            if value is not None:
                os.environ[f"ROUTER_{name.upper()}"] = str(value)
        try:
            create_app(settings)  # validate the policy once, before forking
        except PolicyError as exc:
            print(f"learned-router serve: {exc}", file=sys.stderr)
            return 2
        uvicorn.run("router_service.app:create_app", factory=True, workers=args.workers, **options)
        return 0
    try:
        app = create_app(settings)
    except PolicyError as exc:
        print(f"learned-router serve: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, **options)
    return 0
