"""Text -> WordPiece token ids, identical to ``tokenizers`` but several times faster.

The static embedding only needs ids, and the ``tokenizers`` pipeline (BERT normalizer,
pre-tokenizer, WordPiece, offsets bookkeeping) costs ~1.25 µs per token — most of the
decision budget on long prompts. For an uncased BERT pipeline the work splits cleanly:

* The normalizer deletes control characters and otherwise acts on one character at a
  time (lowercase, strip accents, pad CJK ideographs with spaces), and the pre-tokenizer
  never joins across whitespace. So after deleting the control characters, a text can be
  cut at whitespace and each piece tokenized on its own with the same result.
* So the text is cut at (Python's) whitespace, and each token is looked up in a cache
  whose misses are computed once. On an ASCII token the normalizer and pre-tokenizer
  reduce to "lowercase, then split into runs of letters/digits and single punctuation
  characters" (one regex), each word through the tokenizer's own WordPiece model, itself
  cached. A token with a non-ASCII character (``don’t``, ``café``, a line of Chinese)
  goes through the full tokenizer. A whole text then maps through ``dict.__getitem__``
  in C; tokens past ``max_tokens`` are never looked up.

The ids are therefore ``Tokenizer.encode(text, add_special_tokens=False).ids[:max_tokens]``
by construction (tests check it on thousands of real prompts and random Unicode strings).
A tokenizer that is not uncased BERT WordPiece, or a text containing one of its added
tokens (``[UNK]``, ``[PAD]``...), always goes through the full tokenizer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import chain, islice
from typing import Any

from tokenizers import Tokenizer

# BERT's pre-tokenizer on lowercased ASCII: words of [a-z0-9], every other printable
# character is punctuation and stands alone, whitespace separates.
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
# The C0/C1 control characters BERT's clean_text deletes (all but \t \n \r). Deleting them
# first also removes the only characters Python calls whitespace and BERT does not
# (\x0b \x0c \x1c-\x1f \x85), so Python's whitespace is BERT's from then on.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_CACHED_WORDS = 200_000
MAX_CACHED_PIECE_CHARS = 32  # longer tokens are URLs or sentences, not words: not cached


def tokenizable(text: str) -> str:
    """Text -> text the tokenizer accepts: lone surrogates (invalid UTF-8) become "?".

    Identity for every valid string; training applies it to all texts, serving only after
    the tokenizer rejected one, which gives the same ids at no cost on the hot path."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def bert_uncased(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer is an uncased BERT WordPiece pipeline (the fast path's premise)
    whose added tokens are matched on the raw text (``normalized: false``)."""
    spec = json.loads(tokenizer.to_str())
    normalizer = spec.get("normalizer") or {}
    pre_tokenizer = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    return (
        normalizer.get("type") == "BertNormalizer"
        and normalizer.get("clean_text") is True
        and normalizer.get("lowercase") is True
        and pre_tokenizer.get("type") == "BertPreTokenizer"
        and model.get("type") == "WordPiece"
        and not any(tok.get("normalized") for tok in spec.get("added_tokens") or [])
    )


class _WordIds(dict[str, list[int]]):
    """Lowercased ASCII word -> its WordPiece ids, computed on first sight and cached (up to
    ``MAX_CACHED_WORDS``), so a whole text maps through ``dict.__getitem__`` in C."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self._model = model

    def __missing__(self, word: str) -> list[int]:
        ids = [token.id for token in self._model.tokenize(word)]
        if len(self) < MAX_CACHED_WORDS:
            self[word] = ids
        return ids


class _TokenIds(dict[str, list[int]]):
    """Whitespace-delimited token ("World," or "café") -> its ids, computed on first sight
    and cached: an ASCII token is lowercased and split into words by the regex, each word
    through ``_WordIds``; a token with a non-ASCII character goes through the full pipeline.
    Tokens longer than ``MAX_CACHED_PIECE_CHARS`` (URLs, a line of Chinese) are not cached."""

    def __init__(self, words: _WordIds, full: Callable[[str], list[int]]) -> None:
        super().__init__()
        self._words = words
        self._full = full

    def __missing__(self, token: str) -> list[int]:
        if token.isascii():
            words = _ASCII_WORDS.findall(token.lower())
            ids = list(chain.from_iterable(map(self._words.__getitem__, words)))
        else:
            ids = self._full(token)
        if len(token) <= MAX_CACHED_PIECE_CHARS and len(self) < MAX_CACHED_WORDS:
            self[token] = ids
        return ids


class FastWordPiece:
    """``ids(text)`` -> the tokenizer's ids (no special tokens), truncated to ``max_tokens``."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._added = tuple(
            tok.content for tok in tokenizer.get_added_tokens_decoder().values() if tok.content
        )
        self._tokens = _TokenIds(_WordIds(tokenizer.model), self.slow_ids)
        self.enabled = bert_uncased(tokenizer)  # any other pipeline: always the full path

    def fast_path_applies(self, text: str) -> bool:
        """Whether ``ids`` splits the text itself (otherwise: one full tokenizer call)."""
        return self.enabled and not any(tok in text for tok in self._added)

    def ids(self, text: str) -> list[int]:
        if not self.fast_path_applies(text):
            return self.slow_ids(text)
        if _CONTROL.search(text) is not None:
            text = _CONTROL.sub("", text)
        # Lazily: tokens past max_tokens are never looked up.
        ids = chain.from_iterable(map(self._tokens.__getitem__, text.split()))
        return list(islice(ids, self.max_tokens))

    def slow_ids(self, text: str) -> list[int]:
        """The reference path: the full ``tokenizers`` pipeline."""
        try:
            encoding = self.tokenizer.encode(text, add_special_tokens=False)
        except Exception:  # lone surrogates (invalid UTF-8): encode a cleaned copy
            encoding = self.tokenizer.encode(tokenizable(text), add_special_tokens=False)
        return list(encoding.ids[: self.max_tokens])
