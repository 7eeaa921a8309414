"""Command-line flags + ``Settings`` -> a ``DecisionLog`` opened for reading (CLI support).

Shared by ``learned-router calibrate`` and ``export-logs``: ``--database-url`` /
``--sqlite-path`` flags win, then ``ROUTER_DATABASE_URL`` / ``ROUTER_SQLITE_PATH`` through
``router_service.settings.Settings``, then ``router_logs.db`` in the working directory."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from router_service.logstore.schema import as_utc
from router_service.logstore.store import DecisionLog, create_decision_log

DEFAULT_SQLITE_PATH = Path("router_logs.db")


class LogAccessError(RuntimeError):
    """The decision log cannot be opened (message is for the user)."""


def add_database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="decision-log database, e.g. postgresql+psycopg://user:pw@host/db "
        "(default: ROUTER_DATABASE_URL, else SQLite at --sqlite-path)",
    )
    parser.add_argument(
        "--sqlite-path",
        type=Path,
        metavar="PATH",
        help="SQLite decision log (default: ROUTER_SQLITE_PATH or ./router_logs.db)",
    )


def add_time_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=parse_when, metavar="ISO", help="only rows at/after this time (UTC)"
    )
    parser.add_argument(
        "--until", type=parse_when, metavar="ISO", help="only rows before this time (UTC)"
    )


def parse_when(text: str) -> datetime:
    """ISO 8601 date or datetime (naive = UTC) -> aware UTC datetime."""
    try:
        return as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date/time: {text!r} (e.g. 2025-01-31 or 2025-01-31T12:00:00Z)"
        ) from None


def _settings_values() -> dict[str, Any]:
    """database_url / sqlite_path / policy from the app's Settings (environment)."""
    try:
        from router_service.settings import Settings
    except ImportError:  # pragma: no cover - the settings module is part of the service
        return {}
    try:
        settings = Settings()
    except Exception as exc:  # a bad unrelated ROUTER_* variable must not block reads
        raise LogAccessError(f"invalid ROUTER_* environment: {exc}") from None
    return {
        "database_url": getattr(settings, "database_url", None),
        "sqlite_path": getattr(settings, "sqlite_path", None),
        "policy": getattr(settings, "policy", None),
    }


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Flags over environment over defaults -> {database_url, sqlite_path, policy}."""
    env = _settings_values()
    return {
        "database_url": getattr(args, "database_url", None) or env.get("database_url"),
        "sqlite_path": getattr(args, "sqlite_path", None)
        or env.get("sqlite_path")
        or DEFAULT_SQLITE_PATH,
        "policy": getattr(args, "policy", None) or env.get("policy"),
    }


def describe(database_url: str | None, sqlite_path: Path) -> str:
    if database_url:
        head, _, tail = database_url.partition("@")
        return f"{head.split('://', 1)[0]}://...@{tail}" if tail else database_url
    return str(sqlite_path)


def open_for_reading(database_url: str | None, sqlite_path: Path) -> DecisionLog:
    """-> a DecisionLog whose tables exist, or LogAccessError saying what is missing."""
    if not database_url and not Path(sqlite_path).exists():
        raise LogAccessError(
            f"no decision log at {sqlite_path} (run the router first, or pass "
            "--sqlite-path / --database-url, or set ROUTER_DATABASE_URL)"
        )
    try:
        log = create_decision_log(database_url, Path(sqlite_path))
        if not log.has_schema():
            raise LogAccessError(
                f"{describe(database_url, Path(sqlite_path))} has no 'decisions' table"
            )
    except LogAccessError:
        raise
    except Exception as exc:
        raise LogAccessError(
            f"cannot open decision log {describe(database_url, Path(sqlite_path))}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return log
