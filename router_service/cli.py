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


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learned-router",
        description="Learned LLM router: classify prompts, serve the OpenAI-compatible "
        "router, train and evaluate its model.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that command is not part of this installation yet
            raise
        module.register(subparsers)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A serving command is parsed without importing ``training`` at all; the training
    # commands (and --help) need the full parser.
    parser = build_parser(tuple(m for m in COMMAND_MODULES if m.startswith("router_service.")))
    if not argv or argv[0] not in _subcommands(parser):
        parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        if not getattr(args.func, "__module__", "").startswith("training"):
            raise
        missing = (exc.name or "?").split(".")[0]
        print(
            f"learned-router {args.command}: needs the training extra (missing module "
            f"{missing!r}). Install it with: pip install 'learned-router[train]' "
            "(in a checkout: make setup-dev).",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
