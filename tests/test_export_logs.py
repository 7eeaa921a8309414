"""``learned-router export-logs``: the decision log (+ feedback) as JSONL / CSV / Parquet."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from router_service.cli import main
from router_service.logstore import LogRow, create_decision_log
from router_service.logstore.export import FEEDBACK_COLUMNS, export_rows
from training.data.sources import load_feedback

T0 = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    """Three decisions on consecutive days; r0 judged twice and rated, r1 judged (failed)."""
    path = tmp_path / "router_logs.db"

    async def fill() -> None:
        log = create_decision_log(None, path)
        await log.start()
        for i in range(3):
            await log.record(
                LogRow(
                    f"r{i}",
                    created_at=T0 + timedelta(days=i),
                    messages=[{"role": "user", "content": f"question {i}"}],
                    intent="math",
                    strong_win_rate=0.1 * (i + 1),
                    tier="primary",
                    reason="math: x",
                    scorer="learned",
                    answer=f"answer {i}",
                    fallbacks=["local:llamacpp: timeout"] if i == 2 else [],
                    extra={"i": i},
                )
            )
        log.add_feedback("r0", "judge", judge_model="judge-a", score=3,
                         created_at=T0 + timedelta(hours=1))  # fmt: skip
        log.add_feedback("r0", "judge", judge_model="judge-b", score=8, rationale="good",
                         created_at=T0 + timedelta(hours=2))  # fmt: skip
        log.add_feedback("r0", "user", thumbs=1, rationale="thanks")
        log.add_feedback("r1", "judge", judge_model="judge-a", status="failed", error="timeout")
        await log.close()

    asyncio.run(fill())
    return path


def export(db: Path, out: Path, *extra: str) -> int:
    return main(["export-logs", "--out", str(out), "--sqlite-path", str(db), *extra])


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_rows_have_training_fields(
    logged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "logs.jsonl"
    assert export(logged, out) == 0
    rows = read_jsonl(out)
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2"]
    first = rows[0]
    assert first["messages"] == [{"role": "user", "content": "question 0"}]
    assert (first["intent"], first["tier"], first["strong_win_rate"]) == ("math", "primary", 0.1)
    assert (first["answer"], first["status"], first["extra"]) == ("answer 0", 200, {"i": 0})
    assert first["created_at"] == "2025-06-01T00:00:00+00:00"
    assert rows[2]["fallbacks"] == ["local:llamacpp: timeout"]
    assert "score" not in first
    assert "wrote 3 rows" in capsys.readouterr().out


def test_feedback_columns(logged: Path, tmp_path: Path) -> None:
    out = tmp_path / "fb.jsonl"
    assert export(logged, out, "--include-feedback") == 0
    r0, r1, r2 = read_jsonl(out)
    assert set(FEEDBACK_COLUMNS) <= set(r0)
    # the newest successful judge row wins; the user row has its own columns
    assert (r0["score"], r0["judge"], r0["judge_rationale"]) == (8, "judge-b", "good")
    assert (r0["user_thumbs"], r0["user_comment"]) == (1, "thanks")
    assert [f["source"] for f in r0["feedback"]] == ["judge", "judge", "user"]  # type: ignore[union-attr]
    # a failed judgement is listed but gives no score
    assert r1["score"] is None and r1["feedback"][0]["status"] == "failed"  # type: ignore[index]
    assert r2["feedback"] == [] and r2["judge"] is None


def test_only_with_feedback_and_time_window(logged: Path, tmp_path: Path) -> None:
    out = tmp_path / "some.jsonl"
    assert export(logged, out, "--include-feedback", "--only-with-feedback") == 0
    assert [r["request_id"] for r in read_jsonl(out)] == ["r0", "r1"]
    assert export(logged, out, "--since", "2025-06-02", "--until", "2025-06-03T00:00:00Z") == 0
    assert [r["request_id"] for r in read_jsonl(out)] == ["r1"]


def test_exported_feedback_is_training_feedback(logged: Path, tmp_path: Path) -> None:
    """README's path: ``export-logs --include-feedback`` -> ``train --from-feedback FILE``."""
    out = tmp_path / "fb.jsonl"
    assert export(logged, out, "--include-feedback", "--only-with-feedback") == 0
    rows = load_feedback([out], score_bar=6.0)
    # r0: newest successful verdict 8/10 on a primary answer -> the cheap tier was enough;
    # r1: its only judgement failed -> no label
    assert [(r["messages"][-1]["content"], r["strong_win"]) for r in rows] == [("question 0", 0)]
    assert [r["strong_win"] for r in load_feedback([out], score_bar=9.0)] == [1]


def test_csv(logged: Path, tmp_path: Path) -> None:
    out = tmp_path / "logs.csv"
    assert export(logged, out, "--include-feedback") == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert json.loads(rows[0]["messages"]) == [{"role": "user", "content": "question 0"}]
    assert rows[0]["score"] == "8" and rows[2]["score"] == ""
    assert json.loads(rows[2]["fallbacks"]) == ["local:llamacpp: timeout"]


def test_parquet(logged: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "logs.parquet"
    assert export(logged, out, "--include-feedback") == 0
    table = pq.read_table(out).to_pylist()
    assert [r["request_id"] for r in table] == ["r0", "r1", "r2"]
    assert table[0]["messages"] == [{"role": "user", "content": "question 0"}]
    assert table[0]["score"] == 8 and table[1]["score"] is None
    assert json.loads(table[0]["extra"]) == {"i": 0}


def test_format_flag_overrides_suffix(logged: Path, tmp_path: Path) -> None:
    out = tmp_path / "logs.txt"
    assert export(logged, out) == 2
    assert not out.exists()
    assert export(logged, out, "--format", "jsonl") == 0
    assert len(read_jsonl(out)) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--only-with-feedback"], "needs --include-feedback"),
        (["--since", "2025-06-03", "--until", "2025-06-01"], "before --until"),
    ],
)
def test_usage_errors(logged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      extra: list[str], message: str) -> None:  # fmt: skip
    assert export(logged, tmp_path / "x.jsonl", *extra) == 2
    assert message in capsys.readouterr().err


def test_missing_database_and_bad_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export(tmp_path / "absent.db", tmp_path / "x.jsonl") == 2
    assert "no decision log" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export(tmp_path / "absent.db", tmp_path / "x.jsonl", "--since", "yesterday")
    assert "ISO 8601" in capsys.readouterr().err


class BreaksMidway:
    """A decision log whose database fails after the first row."""

    def iter_feedback(self) -> list[dict[str, object]]:
        return []

    def iter_rows(self, since: object = None, until: object = None) -> object:
        yield {"request_id": "ok", "messages": []}
        raise RuntimeError("connection lost")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_failed_export_keeps_the_previous_file(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    target.write_text("previous dataset\n")
    with pytest.raises(RuntimeError, match="connection lost"):
        export_rows(BreaksMidway(), target, fmt)  # type: ignore[arg-type]
    assert target.read_text() == "previous dataset\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left


def test_unwritable_target_is_a_clean_error(
    logged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "dir_in_the_way.jsonl"
    blocker.mkdir()
    assert export(logged, blocker) == 2
    assert "dir_in_the_way.jsonl" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
