"""``learned-router export-logs``: the decision log -> a dataset file (JSONL, CSV, Parquet).

    learned-router export-logs --out logs.jsonl [--since 2025-01-01] [--until ISO]
                               [--include-feedback [--only-with-feedback]]
                               [--database-url URL | --sqlite-path router_logs.db]

One row per logged decision, oldest first: ``messages`` (as logged, i.e. redacted when
the router was configured to), the decision fields (``intent``, ``intent_confidence``,
``strong_win_rate``, ``tier``, ``reason``, ``scorer``, ...), ``answer``, ``status``,
timings and tokens, ``created_at`` (ISO 8601 UTC). With ``--include-feedback``:
``score``, ``preference``, ``judge``, ``judge_rationale`` (newest successful judge row),
``user_thumbs``, ``user_score``, ``user_preference``, ``user_comment`` (user row), and
``feedback`` (every feedback row). The format follows the file suffix unless ``--format``
says otherwise; in CSV (and Parquet, except ``messages``) nested values are JSON strings.
The file is written to a temporary name and renamed, so a failed export leaves no partial
dataset. Exit status: 0 written (even with 0 rows), 2 usage/database error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from router_service.logstore.access import (
    LogAccessError,
    add_database_args,
    add_time_args,
    describe,
    open_for_reading,
    resolve_settings,
)
from router_service.logstore.export import FORMATS, export_rows, format_for

PROG = "learned-router export-logs"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export-logs",
        help="write logged decisions (optionally with feedback) as JSONL, CSV or Parquet",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="FILE")
    parser.add_argument("--format", choices=FORMATS, help="default: from the --out suffix")
    add_time_args(parser)
    parser.add_argument(
        "--include-feedback", action="store_true", help="add judge and user feedback columns"
    )
    parser.add_argument(
        "--only-with-feedback",
        action="store_true",
        help="with --include-feedback: skip decisions that have no feedback",
    )
    add_database_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        fmt = args.format or format_for(args.out)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.only_with_feedback and not args.include_feedback:
        print(f"{PROG}: --only-with-feedback needs --include-feedback", file=sys.stderr)
        return 2
    if args.since and args.until and args.since >= args.until:
        print(f"{PROG}: --since must be before --until", file=sys.stderr)
        return 2
    try:
        where = resolve_settings(args)
        log = open_for_reading(where["database_url"], where["sqlite_path"])
    except LogAccessError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        stats = export_rows(
            log,
            args.out,
            fmt,
            since=args.since,
            until=args.until,
            include_feedback=args.include_feedback,
            only_with_feedback=args.only_with_feedback,
        )
    except (OSError, ImportError, ValueError, SQLAlchemyError) as exc:
        print(f"{PROG}: export failed: {exc}", file=sys.stderr)
        return 2
    finally:
        log.close_sync()
    source = describe(where["database_url"], where["sqlite_path"])
    extra = f", {stats['with_feedback']} with feedback" if args.include_feedback else ""
    print(f"wrote {stats['rows']} rows{extra} from {source} to {args.out} ({fmt})")
    return 0
