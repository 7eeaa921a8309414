"""Model directory on disk -> the scorer the service routes with, swapped atomically.

* ``ModelStore`` holds the current scorer. ``check()`` compares the directory's signature
  (name, size, mtime, inode of every file) with the one it last saw; on a change (or when
  forced) it loads the new model, probes it (14 intents summing to 1, a finite
  ``strong_win_rate`` in [0, 1]) and only then publishes it. Publishing is one reference
  assignment: a request that already took the old scorer finishes on it, the next one
  takes the new one; no request ever sees a half-loaded model. A corrupt or incompatible
  model is refused with one clear log line and the old model keeps serving.
* ``ModelLoop`` adds the triggers (a background task polling every few seconds, and
  ``reload()`` for ``POST /admin/reload``) and an optional shadow candidate
  (``router_service.shadow``) whose tap wraps the served scorer.
* ``publish_model_dir`` is the writer's side (used by promotion): copy a model into a
  temporary sibling directory, then swap it into place atomically (``renameat2``
  ``RENAME_EXCHANGE`` on Linux; elsewhere two renames and a watcher that retries)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from router_service.decision import Scorer
from router_service.intents import INTENTS

log = logging.getLogger("router_service.model_store")

Loader = Callable[[Path], Scorer]
Signature = tuple[tuple[str, int, int, int], ...] | None

PROBES: tuple[list[dict[str, str]], ...] = (
    [{"role": "user", "content": "hi there! how are you today?"}],
    [{"role": "user", "content": "Write a Python function that merges two sorted lists."}],
    [{"role": "user", "content": "Prove that the square root of 2 is irrational."}],
)


def default_loader(path: Path) -> Scorer:
    from router_service.learned import LearnedScorer

    scorer: Scorer = LearnedScorer.load(path)
    return scorer


def model_signature(model_dir: Path) -> Signature:
    """What identifies a model dir's content cheaply: every file's name/size/mtime/inode.
    ``None`` when the directory is missing or unreadable."""
    try:
        entries = []
        with os.scandir(model_dir) as it:
            for e in it:
                if e.is_file():
                    st = e.stat()
                    entries.append((e.name, st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(sorted(entries))
    except OSError:
        return None


class ModelRejected(ValueError):
    """A loaded model gave unusable scores on the probe prompts."""


def validate_scorer(scorer: Scorer) -> None:
    """Score the probe prompts; raise ``ModelRejected`` unless the outputs are sane."""
    for messages in PROBES:
        scores = scorer.score(messages)
        missing = sorted(set(INTENTS) - set(scores.intent_scores))
        if missing:
            raise ModelRejected(f"intent scores lack {missing}")
        values = list(scores.intent_scores.values())
        if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in values):
            raise ModelRejected("intent scores are not probabilities")
        if abs(sum(values) - 1.0) > 1e-3:
            raise ModelRejected(f"intent scores sum to {sum(values):.4f}, not 1")
        p = scores.strong_win_rate
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ModelRejected(f"strong_win_rate {p!r} is not a probability")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    status: Literal["reloaded", "unchanged", "refused"]
    version: str | None  # the version served after this call
    previous: str | None
    message: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelStore:
    """The current scorer of one model directory and the logic that replaces it."""

    def __init__(
        self,
        model_dir: Path,
        scorer: Scorer,
        *,
        loader: Loader = default_loader,
        on_swap: Callable[[Scorer], None] | None = None,
        validate: Callable[[Scorer], None] = validate_scorer,
    ) -> None:
        self.model_dir = Path(model_dir)
        self._current = scorer
        self._loader = loader
        self.on_swap = on_swap
        self._validate = validate
        self._lock = threading.Lock()  # one load at a time (watcher vs admin endpoint)
        self._seen: Signature = model_signature(self.model_dir)
        self.history: deque[ReloadResult] = deque(maxlen=20)
        self.reloads = 0
        self.refusals = 0

    @property
    def current(self) -> Scorer:
        return self._current

    @property
    def version(self) -> str | None:
        return self._current.version

    def changed(self) -> bool:
        return model_signature(self.model_dir) != self._seen

    def check(self, *, force: bool = False) -> ReloadResult:
        """Load and publish the model on disk if it changed (or ``force``). Blocking."""
        with self._lock:
            return self._check(force)

    def _check(self, force: bool) -> ReloadResult:
        previous = self._current.version
        sig = model_signature(self.model_dir)
        if not force and sig == self._seen:
            return self._done("unchanged", previous, "model files unchanged", record=False)
        for _ in range(3):  # the directory may be swapped while we read it: re-read
            try:
                scorer = self._loader(self.model_dir)
                self._validate(scorer)
            except Exception as exc:
                after = model_signature(self.model_dir)
                if after != sig:
                    sig = after
                    continue
                self._seen = sig  # do not retry the same broken files every poll
                self.refusals += 1
                reason = str(exc) or type(exc).__name__
                log.error(
                    "model reload REFUSED: %s is not a usable model (%s: %s); still serving %s",
                    self.model_dir,
                    type(exc).__name__,
                    reason,
                    previous or "the previous model",
                )
                return self._done("refused", previous, f"{type(exc).__name__}: {reason}")
            after = model_signature(self.model_dir)
            if after != sig:
                sig = after
                continue
            break
        else:
            return self._done("refused", previous, "model directory kept changing during load")
        self._seen = sig
        self._current = scorer  # the atomic swap: one reference assignment
        if self.on_swap is not None:
            self.on_swap(scorer)
        self.reloads += 1
        log.info(
            "model reloaded from %s: version %s -> %s", self.model_dir, previous, scorer.version
        )
        return self._done("reloaded", previous, f"now serving {scorer.version}")

    def _done(
        self, status: Any, previous: str | None, message: str, *, record: bool = True
    ) -> ReloadResult:
        result = ReloadResult(status, self._current.version, previous, message, time.time())
        if record:
            self.history.append(result)
        return result


class ModelLoop:
    """A ``ModelStore`` + its triggers + an optional shadow candidate, published as the
    app's scorer through ``publish`` (e.g. ``lambda s: setattr(state, "scorer", s)``)."""

    def __init__(
        self,
        store: ModelStore | None,
        publish: Callable[[Scorer], None],
        *,
        poll_seconds: float = 5.0,
        served: Scorer | None = None,
    ) -> None:
        self.store = store
        self._publish = publish
        self.poll_seconds = poll_seconds
        self._base: Scorer | None = served if store is None else None
        self.shadow: Any = None  # router_service.shadow.ShadowEvaluator
        self._task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        if store is not None:
            store.on_swap = lambda _s: self._republish()

    @property
    def current(self) -> Scorer:
        if self.store is not None:
            return self.store.current
        assert self._base is not None
        return self._base

    def _republish(self) -> None:
        base = self.current
        if self.shadow is not None:
            from router_service.shadow import ShadowTap

            self._publish(ShadowTap(base, self.shadow))
        else:
            self._publish(base)

    def set_shadow(self, shadow: Any) -> None:
        """Start (or replace, or with None stop) the shadow candidate."""
        old, self.shadow = self.shadow, shadow
        if shadow is not None:
            shadow.start()
        self._republish()
        if old is not None:
            old.stop()

    async def reload(self, *, force: bool = True) -> ReloadResult:
        if self.store is None:
            now = time.time()
            v = self.current.version
            return ReloadResult("refused", v, v, "the service runs the heuristic scorer", now)
        async with self._reload_lock:
            return await asyncio.to_thread(self.store.check, force=force)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                if self.store is not None and self.store.changed():
                    await self.reload(force=False)
            except Exception:  # the watcher must survive anything
                log.exception("model watcher: reload check failed")

    async def start(self) -> None:
        if self._task is None and self.store is not None and self.poll_seconds > 0:
            self._task = asyncio.create_task(self._watch(), name="model-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.shadow is not None:
            await asyncio.to_thread(self.shadow.stop)

    def status(self) -> dict[str, Any]:
        store = self.store
        return {
            "model_dir": str(store.model_dir) if store else None,
            "version": self.current.version,
            "scorer": self.current.name,
            "watch_seconds": self.poll_seconds if store else None,
            "reloads": store.reloads if store else 0,
            "refusals": store.refusals if store else 0,
            "history": [r.as_dict() for r in store.history] if store else [],
            "shadow": self.shadow is not None,
        }


# --- the writer's side: atomic publication of a model directory ---------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``). False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: filesystem/kernel cannot
        return False
    raise OSError(err, f"renameat2({a}, {b}) failed: {os.strerror(err)}")


def publish_model_dir(source: Path, target: Path) -> Path:
    """Copy ``source`` (a model dir) to ``target`` atomically: readers see the old files or
    the new files, never a mix. Returns ``target``."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise FileNotFoundError(f"model dir {source} does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        for item in source.iterdir():
            dest = staging / item.name
            if item.is_dir():
                shutil.copytree(item, dest)
            else:
                shutil.copy2(item, dest)
        for f in staging.rglob("*"):  # data on disk before the names are swapped
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.chmod(staging, 0o755)
        if not target.exists() and not target.is_symlink():
            os.rename(staging, target)
        elif target.is_dir() and not target.is_symlink() and _renameat2_exchange(staging, target):
            shutil.rmtree(staging, ignore_errors=True)  # now holds the old files
        else:  # portable fallback: a brief window where target is missing
            old = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
            os.rename(target, old)
            os.rename(staging, target)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
