"""benchmarks.common and the pure parts of the benchmark scripts: statistics, the result
envelope, strict JSON, BENCHMARKS.md section rewriting, prompt bucketing, the summary."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import common
from benchmarks.prompts import BUCKETS, bucketed_prompts, count_tokens, worst_case_prompt
from benchmarks.run_all import BENCHMARKS, summary_markdown


def strict_json(path: Path) -> dict:
    def bad(value: str) -> None:
        raise ValueError(f"non-standard JSON constant {value}")

    data: dict = json.loads(path.read_text(encoding="utf-8"), parse_constant=bad)
    return data


def test_summarize_percentiles_and_empty() -> None:
    s = common.summarize(list(range(1, 101)))
    assert s["n"] == 100
    assert s["min"] == 1 and s["max"] == 100
    assert s["p50"] == pytest.approx(50.5)
    assert s["p99"] == pytest.approx(np.percentile(range(1, 101), 99))
    assert common.summarize([]) == {"n": 0}
    assert common.summarize([float("nan"), 3.0])["n"] == 1


def test_rounds_summary_ratios_are_per_round_against_the_baseline() -> None:
    rounds = {
        "base": [[10.0] * 9 + [100.0], [20.0] * 10],
        "cand": [[20.0] * 10, [30.0] * 10],
    }
    out = common.rounds_summary(rounds, "base")
    assert out["cand"]["rounds"] == 2
    assert out["cand"]["p50_median_of_rounds"] == pytest.approx(25.0)
    # round ratios 20/10 = 2 and 30/20 = 1.5 -> median 1.75
    assert out["cand"]["p50_ratio_to_base"] == pytest.approx(1.75)
    assert out["base"]["p50_ratio_to_base"] == pytest.approx(1.0)
    assert out["cand"]["pooled"]["n"] == 20


def test_ratio_guards() -> None:
    assert common.ratio(1.0, 0.0) is None
    assert common.ratio(None, 1.0) is None
    assert common.ratio(float("nan"), 1.0) is None
    assert common.ratio(3.0, 2.0) == 1.5


def test_write_result_is_strict_json(tmp_path: Path) -> None:
    doc = common.envelope(
        "demo", {"a": float("nan"), "b": np.float32(1.5), "c": [np.int64(2)]}, params={}, quick=True
    )
    path = common.write_result("demo", doc, tmp_path)
    data = strict_json(path)
    assert data["results"] == {"a": None, "b": 1.5, "c": [2]}
    assert data["benchmark"] == "demo" and data["quick"] is True
    m = data["machine"]
    assert m["cpu_cores"] >= 1 and m["cpu_model"] and m["os"] and m["python"]
    assert "numpy" in data["packages"] and data["packages"]["numpy"]
    assert data["timestamp"].endswith("+00:00")


def test_git_commit_reads_loose_and_packed_refs(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    assert common.git_commit(tmp_path) is None
    (git / "packed-refs").write_text("# pack\n" + "a" * 40 + " refs/heads/main\n")
    assert common.git_commit(tmp_path) == "a" * 40
    (git / "refs" / "heads" / "main").write_text("b" * 40 + "\n")
    assert common.git_commit(tmp_path) == "b" * 40
    (git / "HEAD").write_text("c" * 40 + "\n")
    assert common.git_commit(tmp_path) == "c" * 40


def test_uncommitted_changes_name_edited_code_but_not_benchmark_outputs(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for rel in ("code.py", "BENCHMARKS.md", "benchmarks/results/x.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert common.uncommitted_changes(tmp_path) == []
    for rel in ("BENCHMARKS.md", "benchmarks/results/x.json"):
        (tmp_path / rel).write_text("v2\n")
    (tmp_path / "new_untracked.py").write_text("x\n")
    assert common.uncommitted_changes(tmp_path) == []
    (tmp_path / "code.py").write_text("v2\n")
    assert common.uncommitted_changes(tmp_path) == ["code.py"]
    assert common.uncommitted_changes(tmp_path / "not-a-repo-dir-missing") is None


def test_provenance_line_flags_a_dirty_tree() -> None:
    doc = {
        "timestamp": "t",
        "git_commit": "0123456789abcdef",
        "machine": {"cpu_model": "cpu", "cpu_cores": 2, "ram_gib": 1.0, "python": "3.11"},
    }
    assert "at commit `0123456789` on cpu" in common.provenance_line(doc)
    doc["uncommitted_changes"] = [f"f{i}.py" for i in range(7)]
    line = common.provenance_line(doc)
    assert "`0123456789` + uncommitted changes to `f0.py`" in line
    assert "`f4.py` and 2 more files on cpu" in line and line.count("`") % 2 == 0


def test_update_markdown_rewrites_only_its_section(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    common.update_markdown("proxy", "first body", md)
    text = md.read_text()
    for name, _ in common.SECTIONS:
        start, end = common.markers(name)
        assert start in text and end in text
    assert text.index("bench:summary") < text.index("bench:proxy")  # skeleton order
    common.update_markdown("quality", "quality body", md)
    common.update_markdown("proxy", "second body $1 \\1", md)  # no regex escapes applied
    text = md.read_text()
    assert "first body" not in text
    assert "second body $1 \\1" in text and "quality body" in text
    assert text.count("<!-- bench:proxy -->") == 1
    common.update_markdown("brand_new", "appended", md)
    assert md.read_text().rstrip().endswith("<!-- /bench:brand_new -->")


def test_md_table_escapes_pipes_and_marks_missing() -> None:
    table = common.md_table(["a", "b"], [["x|y", None]])
    assert table.splitlines()[2] == "| x\\|y | – |"


def test_one_cpu_restores_affinity() -> None:
    before = os.sched_getaffinity(0)
    with common.one_cpu() as cpu:
        assert os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before


def test_prompt_buckets_respect_token_limits() -> None:
    pool = ["hi", "word " * 60, "word " * 300, "word " * 2000]
    buckets = bucketed_prompts(10, 1, seed=3, pool=pool)
    counts = dict(zip(pool, count_tokens(pool), strict=True))
    lower = 0
    for name, upper in BUCKETS:
        assert buckets[name], name
        assert all(lower < counts[t] <= upper for t in buckets[name])
        lower = upper
    chosen = {t for texts in buckets.values() for t in texts}
    assert all(t not in chosen for t in pool if counts[t] > 512)
    worst = buckets["1MB"][0]
    assert len(worst.encode("utf-8")) <= 1 << 20
    assert len(worst.encode("utf-8")) > (1 << 20) - 5
    assert worst_case_prompt(pool, 1, size=1000) == worst_case_prompt(pool, 1, size=1000)


def test_summary_lists_missing_results(tmp_path: Path) -> None:
    text = summary_markdown(tmp_path, [{"name": "proxy", "ok": False}], quick=True)
    assert "`proxy`" in text and "Failed" in text
    for name in BENCHMARKS:
        assert f"`{name}`" in text


def test_apgr_interval_brackets_the_estimate_and_narrows_with_more_rows() -> None:
    from benchmarks.feedback_curve import apgr_interval
    from training.evaluate.metrics import apgr

    rng = np.random.default_rng(0)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        weak = (rng.random(n) < 0.6).astype(float)
        strong = np.maximum(weak, rng.random(n) < 0.5).astype(float)
        return strong - weak + rng.normal(0, 0.7, n), weak, strong  # an informative scorer

    widths = []
    for n in (150, 3000):
        scores, weak, strong = sample(n)
        lo, hi = apgr_interval(scores, weak, strong, resamples=300, seed=1)
        assert lo < apgr(scores, weak, strong) < hi
        assert (lo, hi) == apgr_interval(scores, weak, strong, resamples=300, seed=1)
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    same = np.ones(10)
    assert all(np.isnan(apgr_interval(same, same, same, resamples=20, seed=0)))
