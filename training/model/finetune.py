"""(static table, intent-labelled texts) -> a table tuned end to end for intent, and the
linear intent head trained with it.

The pooled embedding the graph computes, ``[l2norm(sum of rows) || l2norm(sum of the first
head_tokens rows)]``, is differentiable in the table, so the table and a linear layer on top
are trained together on the intent labels (torch ``EmbeddingBag`` sums + ``SparseAdam``: only
the rows of tokens in a batch move). Class-balanced cross-entropy; ``epochs`` and the table's
learning rate were chosen on held-out sources (``training.evaluate.ood``: mean
leave-one-source-out intent macro-F1 0.357 frozen, 0.404 at lr 3e-4, 0.431 at 1e-3, 0.428 at
3e-3, 0.392 at 1e-2, 6 epochs). The tuned float table is re-quantised to int16, so serving
is unchanged: same graph, same speed. torch is imported here only (training)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_service.intents import INTENT_INDEX, INTENTS
from training.config import TrainConfig
from training.model.embed import StaticEmbedding
from training.model.heads import LinearStack

log = logging.getLogger("training")


@dataclass(frozen=True)
class TuneSettings:
    epochs: int = 6
    table_lr: float = 1e-3
    head_lr: float = 3e-3
    batch: int = 128
    seed: int = 1337


def tune_settings(cfg: TrainConfig) -> TuneSettings:
    return TuneSettings(cfg.tune_epochs, cfg.tune_table_lr, seed=cfg.seed)


def tune_table(
    embedder: StaticEmbedding,
    texts: Sequence[str],
    intents: Sequence[str],
    settings: TuneSettings,
) -> tuple[StaticEmbedding, LinearStack]:
    """Intent-labelled texts -> (the tuned ``StaticEmbedding``, its linear intent head)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(settings.seed)
    if not embedder.normalize:
        raise ValueError("table tuning expects the L2-normalised pooling (normalize_embedding)")
    ids = embedder.token_ids(list(texts))
    y = torch.tensor([INTENT_INDEX[i] for i in intents])
    zero = embedder.zero_id
    table = torch.tensor(embedder.table_q.astype(np.float32) * embedder.scale)
    bag = nn.EmbeddingBag.from_pretrained(table, mode="sum", freeze=False, sparse=True)
    n_pools = 2 if embedder.head_tokens > 0 else 1
    linear = nn.Linear(n_pools * embedder.dim, len(INTENTS))

    def batch_input(rows: np.ndarray, cut: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [(ids[r][:cut] if cut else ids[r]) or [zero] for r in rows]
        offsets = torch.tensor(np.cumsum([0] + [len(s) for s in seqs[:-1]]))
        return torch.tensor([t for s in seqs for t in s]), offsets

    def pooled(rows: np.ndarray) -> torch.Tensor:
        parts = [F.normalize(bag(*batch_input(rows, None)), dim=1)]
        if n_pools == 2:
            parts.append(F.normalize(bag(*batch_input(rows, embedder.head_tokens)), dim=1))
        return torch.cat(parts, dim=1)

    counts = torch.bincount(y, minlength=len(INTENTS)).float()
    weight = counts.sum() / (counts.clamp(min=1) * len(INTENTS))
    opt_head = torch.optim.Adam(linear.parameters(), lr=settings.head_lr, weight_decay=1e-5)
    opt_table = torch.optim.SparseAdam(list(bag.parameters()), lr=settings.table_lr)
    rng = np.random.default_rng(settings.seed)
    for epoch in range(settings.epochs):
        total = 0.0
        order = rng.permutation(len(y))  # one pass over every row per epoch
        for start in range(0, len(y), settings.batch):
            rows = order[start : start + settings.batch]
            loss = F.cross_entropy(linear(pooled(rows)), y[rows], weight=weight)
            opt_head.zero_grad()
            opt_table.zero_grad()
            loss.backward()
            opt_head.step()
            opt_table.step()
            total += loss.item() * len(rows)
        log.info("table tuning epoch %d: loss %.4f", epoch + 1, total / max(len(y), 1))
    tuned = bag.weight.detach().numpy().astype(np.float64)[:zero]
    out = StaticEmbedding.from_float(
        tuned,
        embedder.tokenizer,
        embedder.normalize,
        f"{embedder.source}, tuned end to end on intent labels",
        embedder.head_tokens,
    )
    head = LinearStack(
        linear.weight.detach().numpy().astype(np.float64),
        linear.bias.detach().numpy().astype(np.float64),
        n_pools * embedder.dim,
        np.arange(len(INTENTS), dtype=np.int64),
    )
    return out, head
