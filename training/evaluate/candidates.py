"""A candidate spec -> ``Candidate`` / ``IntentCandidate`` -> the config that trains it.

Spec grammar: ``KIND[+alpaca|+alpaca-trees][@OPTION,...]``:

* ``KIND``: a strong-win head kind of ``training.model.heads`` ("gain", "stack", "linear",
  "hgb");
* ``+alpaca``: the head also learns from the AlpacaEval judge verdicts (CC BY-NC 4.0 data);
  ``+alpaca-trees`` ("stack" only): they reach the stacker's trees only, not its
  regressions (``training.model.stacked_gain``);
* options: ``rows`` (every training row weighs the same; without it every source weighs
  about the same, ``TrainConfig.strong_source_balance``), ``c=FLOAT`` (inverse L2
  strength of the linear heads; without it ``TrainConfig.strong_linear_c``) and, with
  ``+alpaca-trees``, ``aw=FLOAT`` (the weight of each AlpacaEval row in the trees; 1
  without it).

So ``gain@rows,c=0.0003`` is the gain head, rows unweighted, C = 0.0003. Candidates compete
under the leave-one-source-out protocol (``training.evaluate.ood``); the winner's options
become the shipped config (``training.evaluate.selection.apply_selection``).

Intent specs, ``KIND[@h=FLOAT][,ne=FLOAT]``: ``KIND`` "tuned" (the table tuned end to end
with a linear head), "linear" or "hgb"; ``h`` / ``ne`` the heuristic's blend weights
(``IntentCandidate``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from training.config import TrainConfig

_GRAMMAR = "KIND[+alpaca|+alpaca-trees][@rows][,c=FLOAT][,aw=FLOAT]"


@dataclass(frozen=True)
class Candidate:
    kind: str
    alpaca: bool = False
    rows: bool = False  # every row weighs the same (strong_source_balance = 0)
    c: float | None = None  # strong_linear_c; None = the config's
    trees_only: bool = False  # "+alpaca-trees": AlpacaEval rows reach the stacker's trees only
    aw: float | None = None  # their weight there; None = the config's (1 by default)

    @property
    def spec(self) -> str:
        """The canonical spec string (what the OOD table and the manifest call it)."""
        options = [
            o
            for o in (
                "rows" if self.rows else "",
                f"c={self.c:g}" if self.c else "",
                f"aw={self.aw:g}" if self.aw is not None else "",
            )
            if o
        ]
        data = "+alpaca-trees" if self.trees_only else "+alpaca" if self.alpaca else ""
        return self.kind + data + ("@" + ",".join(options) if options else "")

    def config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with this candidate's head kind, data and options."""
        return dataclasses.replace(
            cfg,
            strong_head=self.kind,
            strong_train_alpaca=self.alpaca,
            strong_alpaca_trees_only=self.trees_only,
            strong_alpaca_weight=self.aw if self.aw is not None else cfg.strong_alpaca_weight,
            strong_source_balance=0.0 if self.rows else cfg.strong_source_balance,
            strong_linear_c=self.c if self.c is not None else cfg.strong_linear_c,
        )


def parse_candidate(spec: str) -> Candidate:
    """A spec string -> ``Candidate``; ``ValueError`` naming the grammar when malformed."""
    head, _, opts = spec.partition("@")
    kind, _, extra = head.partition("+")
    if not kind or extra not in ("", "alpaca", "alpaca-trees"):
        raise ValueError(f"strong-win candidate {spec!r}: expected {_GRAMMAR}")
    trees_only = extra == "alpaca-trees"
    if trees_only and kind != "stack":
        raise ValueError(f"strong-win candidate {spec!r}: +alpaca-trees needs the stack head")
    rows = False
    numbers: dict[str, float] = {}
    for opt in filter(None, opts.split(",")):
        name, eq, value = opt.partition("=")
        if opt == "rows":
            rows = True
        elif eq and name in ("c", "aw"):
            try:
                numbers[name] = float(value)
            except ValueError:
                raise ValueError(
                    f"strong-win candidate {spec!r}: {name} must be a number"
                ) from None
            if not numbers[name] > 0:
                raise ValueError(f"strong-win candidate {spec!r}: {name} must be positive")
        else:
            raise ValueError(f"strong-win candidate {spec!r}: unknown option {opt!r} ({_GRAMMAR})")
    if "aw" in numbers and not trees_only:
        raise ValueError(f"strong-win candidate {spec!r}: aw= goes with +alpaca-trees")
    return Candidate(kind, extra != "", rows, numbers.get("c"), trees_only, numbers.get("aw"))


_INTENT_GRAMMAR = "KIND[@h=FLOAT][,ne=FLOAT]"
INTENT_CANDIDATE_KINDS = ("tuned", "linear", "hgb")


@dataclass(frozen=True)
class IntentCandidate:
    """An intent head kind and its blend with the heuristic (``router_service.intent_blend``):
    ``h`` the heuristic's weight (0: no blend), ``ne`` its weight on non-English text (None:
    the same as ``h``). So ``tuned@h=0.5,ne=2`` is the tuned table's linear head times the
    heuristic to the power 0.5, and to the power 2 where the text is mostly non-ASCII."""

    kind: str
    h: float = 0.0
    ne: float | None = None

    @property
    def non_english(self) -> float:
        return self.h if self.ne is None else self.ne

    @property
    def blended(self) -> bool:
        return self.h > 0 or self.non_english > 0

    @property
    def spec(self) -> str:
        options = [o for o in (f"h={self.h:g}" if self.h else "", _ne(self.ne)) if o]
        return self.kind + ("@" + ",".join(options) if options else "")

    def config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with this candidate's intent head, table tuning and blend weights."""
        return dataclasses.replace(
            cfg,
            intent_head="linear" if self.kind == "tuned" else self.kind,
            tune_embedding=self.kind == "tuned",
            intent_blend_weight=self.h,
            intent_blend_non_english=self.ne,
        )


def _ne(ne: float | None) -> str:
    return "" if ne is None else f"ne={ne:g}"


def intent_candidate_of(cfg: TrainConfig) -> IntentCandidate:
    """A config -> the intent candidate it trains (the inverse of ``IntentCandidate.config``)."""
    kind = "tuned" if cfg.tune_embedding else cfg.intent_head
    return IntentCandidate(kind, cfg.intent_blend_weight, cfg.intent_blend_non_english)


def parse_intent_candidate(spec: str) -> IntentCandidate:
    """An intent spec string -> ``IntentCandidate``; ``ValueError`` naming the grammar."""
    kind, _, opts = spec.partition("@")
    if kind not in INTENT_CANDIDATE_KINDS:
        raise ValueError(
            f"intent candidate {spec!r}: expected {_INTENT_GRAMMAR}, "
            f"KIND in {INTENT_CANDIDATE_KINDS}"
        )
    values: dict[str, float] = {}
    for opt in filter(None, opts.split(",")):
        key, eq, raw = opt.partition("=")
        if key not in ("h", "ne") or not eq or key in values:
            raise ValueError(f"intent candidate {spec!r}: bad option {opt!r} ({_INTENT_GRAMMAR})")
        try:
            values[key] = float(raw)
        except ValueError:
            raise ValueError(f"intent candidate {spec!r}: {key} must be a number") from None
        if not values[key] >= 0 or values[key] == float("inf"):
            raise ValueError(f"intent candidate {spec!r}: {key} must be a finite number >= 0")
    return IntentCandidate(kind, values.get("h", 0.0), values.get("ne"))
