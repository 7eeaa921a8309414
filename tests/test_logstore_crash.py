"""Crash safety of the decision log: a process that is SIGKILLed mid-traffic loses no row
it had acknowledged (``await record()`` returned), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from router_service.logstore import create_decision_log, metadata

PG_URL = os.environ.get("ROUTER_TEST_POSTGRES_URL")

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from router_service.logstore import LogRow, create_decision_log

    url, path = sys.argv[1] or None, Path(sys.argv[2])

    async def worker(log, w):
        k = 0
        while True:
            rid = f"w{w}-{k}"
            await log.record(LogRow(rid, messages=[{"role": "user", "content": "x" * 300}]))
            sys.stdout.write(rid + "\\n")  # acknowledged: the row is committed
            sys.stdout.flush()
            k += 1

    async def main():
        log = create_decision_log(url, path)
        await log.start()
        await asyncio.gather(*(worker(log, w) for w in range(48)))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not PG_URL, reason="ROUTER_TEST_POSTGRES_URL is not set"),
            ],
        ),
    ],
)
def test_sigkill_loses_no_acknowledged_row(backend: str, tmp_path: Path) -> None:
    url = PG_URL if backend == "postgres" else None
    if url:
        engine = sa.create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()
    db_path = tmp_path / "crash.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), url or "", str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    try:
        for line in proc.stdout:  # kill it while it is busy writing
            acked.append(line.strip())
            if len(acked) >= 1500:
                break
        proc.send_signal(signal.SIGKILL)
        acked.extend(line.strip() for line in proc.stdout)  # acks already in the pipe
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert len(acked) >= 1500

    log = create_decision_log(url, db_path)
    stored = {r["request_id"] for r in log.iter_rows(columns=("request_id",))}
    log.close_sync()
    missing = [rid for rid in acked if rid and rid not in stored]
    assert missing == []
    assert len(stored) >= len(acked)  # rows committed but not yet acknowledged may exist
    if url:
        engine = sa.create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()
