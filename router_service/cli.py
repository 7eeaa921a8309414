"""``learned-router`` command line: argv -> one subcommand.

Each subcommand lives in its own module under ``router_service.commands`` (serving side)
or ``training.commands`` (training side, imported only when that command runs, so the
serving commands never load torch, scikit-learn or mlflow). A module exposes
``register(subparsers)`` which adds its parser and sets ``func`` to a ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module, present when the module is importable). Training commands need the
# ``train`` extra; when it is missing they are simply not offered.
COMMAND_MODULES: tuple[str, ...] = (
    "router_service.commands.classify",
    "router_service.commands.serve",
    "router_service.commands.calibrate",
    "router_service.commands.export_logs",
    "router_service.commands.chat",
    "training.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learned-router",
        description="Learned LLM router: classify prompts, serve the OpenAI-compatible "
        "router, train and evaluate its model.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that command is not part of this installation yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
