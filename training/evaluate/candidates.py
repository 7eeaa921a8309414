"""A strong-win candidate spec -> ``Candidate`` -> the config that trains it.

Spec grammar: ``KIND[+alpaca][@OPTION,...]``:

* ``KIND``: a strong-win head kind of ``training.model.heads`` ("gain", "linear", "hgb");
* ``+alpaca``: the head also learns from the AlpacaEval judge verdicts (CC BY-NC 4.0 data);
* options: ``rows`` (every training row weighs the same; without it every source weighs
  about the same, ``TrainConfig.strong_source_balance``) and ``c=FLOAT`` (inverse L2
  strength of the linear heads; without it ``TrainConfig.strong_linear_c``).

So ``gain@rows,c=0.0003`` is the gain head, rows unweighted, C = 0.0003. Candidates compete
under the leave-one-source-out protocol (``training.evaluate.ood``); the winner's options
become the shipped config (``training.evaluate.selection.apply_selection``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from training.config import TrainConfig

_GRAMMAR = "KIND[+alpaca][@rows][,c=FLOAT]"


@dataclass(frozen=True)
class Candidate:
    kind: str
    alpaca: bool = False
    rows: bool = False  # every row weighs the same (strong_source_balance = 0)
    c: float | None = None  # strong_linear_c; None = the config's

    @property
    def spec(self) -> str:
        """The canonical spec string (what the OOD table and the manifest call it)."""
        options = [o for o in ("rows" if self.rows else "", f"c={self.c:g}" if self.c else "") if o]
        return (
            self.kind
            + ("+alpaca" if self.alpaca else "")
            + ("@" + ",".join(options) if options else "")
        )

    def with_alpaca(self) -> Candidate:
        return dataclasses.replace(self, alpaca=True)

    def config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with this candidate's head kind, data and options."""
        return dataclasses.replace(
            cfg,
            strong_head=self.kind,
            strong_train_alpaca=self.alpaca,
            strong_source_balance=0.0 if self.rows else cfg.strong_source_balance,
            strong_linear_c=self.c if self.c is not None else cfg.strong_linear_c,
        )


def parse_candidate(spec: str) -> Candidate:
    """A spec string -> ``Candidate``; ``ValueError`` naming the grammar when malformed."""
    head, _, opts = spec.partition("@")
    kind, _, extra = head.partition("+")
    if not kind or extra not in ("", "alpaca"):
        raise ValueError(f"strong-win candidate {spec!r}: expected {_GRAMMAR}")
    rows, c = False, None
    for opt in filter(None, opts.split(",")):
        if opt == "rows":
            rows = True
        elif opt.startswith("c="):
            try:
                c = float(opt[2:])
            except ValueError:
                raise ValueError(f"strong-win candidate {spec!r}: c must be a number") from None
            if not c > 0:
                raise ValueError(f"strong-win candidate {spec!r}: c must be positive")
        else:
            raise ValueError(f"strong-win candidate {spec!r}: unknown option {opt!r} ({_GRAMMAR})")
    return Candidate(kind, extra == "alpaca", rows, c)
