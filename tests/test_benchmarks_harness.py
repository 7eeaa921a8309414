"""Each benchmark on its ``--quick`` budget -> valid result JSON, a PNG and its BENCHMARKS.md
section. These check the harness (files, schema, markers), never timings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import (
    baseline_router,
    bench_decision_latency,
    bench_embedding,
    bench_multiturn,
    bench_proxy,
    bench_quality,
    bench_training,
    run_all,
)
from benchmarks.common import markers
from router_service.learned import LearnedScorer
from router_service.scoring import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.routellm

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The committed model when it loads, else a ``tiny`` model trained now."""
    try:
        LearnedScorer.load(DEFAULT_MODEL_DIR)
        yield DEFAULT_MODEL_DIR
        return
    except Exception:
        pass
    from training.config import load_config
    from training.train import run_training

    tmp = tmp_path_factory.mktemp("model")
    cfg = load_config(
        "tiny", out_dir=str(tmp / "tiny"), mlflow=False, report_dir=str(tmp / "reports")
    )
    run_training(cfg)
    yield tmp / "tiny"


def load_doc(out: Path, name: str) -> dict:
    def bad(value: str) -> None:
        raise ValueError(f"non-standard JSON constant {value}")

    doc: dict = json.loads((out / f"{name}.json").read_text(encoding="utf-8"), parse_constant=bad)
    assert doc["benchmark"] == name
    assert doc["quick"] is True
    assert doc["machine"]["cpu_cores"] >= 1
    assert doc["packages"]["onnxruntime"]
    assert isinstance(doc["results"], dict) and doc["results"]
    return doc


def section(md: Path, name: str) -> str:
    text = md.read_text(encoding="utf-8")
    start, end = markers(name)
    assert text.count(start) == 1 and text.count(end) == 1
    body = text[text.index(start) + len(start) : text.index(end)]
    assert "quick mode" in body
    return body


def png_ok(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def common_args(tmp_path: Path) -> list[str]:
    return ["--quick", "--out-dir", str(tmp_path), "--markdown", str(tmp_path / "B.md")]


def test_decision_latency_quick(tmp_path: Path, model_dir: Path) -> None:
    argv = [*common_args(tmp_path), "--model-dir", str(model_dir), "--no-transformers"]
    assert bench_decision_latency.main(argv) == 0
    res = load_doc(tmp_path, "decision_latency")["results"]
    assert "_rounds" not in res
    assert res["not_measured"].keys() == {"learned_transformer", "minilm_sklearn"}
    for bucket in ("<=32", "<=128", "<=512", "1MB"):
        for scorer in ("learned", "heuristic"):
            entry = res["latency_us"][bucket][scorer]
            assert entry["pooled"]["n"] > 0
            assert entry["pooled"]["p50"] <= entry["pooled"]["p99"]
        assert res["latency_us"][bucket]["heuristic"]["p50_ratio_to_heuristic"] == 1.0
    assert "meets_p50_target" in res["latency_us"]["<=512"]["learned"]
    assert res["model_size"]["total_bytes"] > 0
    rss = res["serving_rss"]["learned"]
    assert rss["n_prompts"] > 0 and rss["rss_after_mib"] > 0
    assert rss["heavy_modules_loaded"] == []  # serving never loads torch/sklearn/training
    body = section(tmp_path / "B.md", "decision_latency")
    assert "| <=512 | `learned` |" in body and "decision_latency.png" in body
    assert png_ok(tmp_path / "decision_latency.png")


def test_proxy_quick(tmp_path: Path, model_dir: Path) -> None:
    args = [*common_args(tmp_path), "--model-dir", str(model_dir), "--baseline-ref", "none"]
    assert bench_proxy.main(args) == 0
    res = load_doc(tmp_path, "proxy")["results"]
    assert res["scorer"] == "learned"
    lat = res["latency"]
    assert lat["errors"] == 0
    assert lat["router_us"]["pooled"]["n"] == lat["direct_us"]["pooled"]["n"] > 0
    tp = res["throughput"]["workers_1"]
    assert tp["router"]["errors"] == 0 and tp["direct"]["errors"] == 0
    assert tp["router"]["rps_median"] > 0 and tp["direct"]["rps_median"] > 0
    for key in ("streams_router", "streams_direct"):
        assert res[key]["failed"] == 0 and res[key]["ok"] == res[key]["streams"]
    apis = res["apis"]
    assert set(apis["added_us"]) == {"chat", "responses", "messages"}
    assert apis["errors"] == dict.fromkeys(("chat", "responses", "messages", "direct"), 0)
    assert res["litellm"] is None  # the quick budget never installs LiteLLM
    assert res["ab_baselines"] == []  # --baseline-ref none: no A/B
    rows = res["log_rows"]["workers_1"]
    assert rows["written"] == rows["requests"] > 0  # logging on: one row per request
    body = section(tmp_path / "B.md", "proxy")
    assert "added by the router" in body and "`/v1/messages`" in body
    assert png_ok(tmp_path / "proxy.png")


def _ab_rounds(p50: float, p99: float, rps: float) -> list[dict]:
    return [
        {"added_p50_us": p50 * f, "added_p99_us": p99 * f, "rps": rps / f, "direct_rps": 2 * rps,
         "errors": 0}
        for f in (0.9, 1.0, 1.1)
    ]  # fmt: skip


def test_baseline_ab_verdict_and_table() -> None:
    base = baseline_router.side_summary(_ab_rounds(400.0, 900.0, 1000.0))
    assert base["added_p50_us"] == 400.0 and base["rps_median"] == 1000.0
    assert base["rps_to_direct_median"] == pytest.approx(0.5)
    same = baseline_router.side_summary(_ab_rounds(410.0, 940.0, 960.0))  # +2.5%, +4.4%, -4%
    ok = baseline_router.ab_verdict(same, base)
    assert ok["passes"] and ok["failed"] == []
    assert ok["ratios"]["added_p50_us"] == pytest.approx(1.025)
    slow = baseline_router.side_summary(_ab_rounds(440.0, 900.0, 940.0))  # +10% p50, -6% req/s
    bad = baseline_router.ab_verdict(slow, base)
    assert not bad["passes"] and bad["failed"] == ["added_p50_us", "rps_median"]
    faster = baseline_router.side_summary(_ab_rounds(300.0, 800.0, 1200.0))
    assert baseline_router.ab_verdict(faster, base)["passes"]  # only slower counts against it
    zero = baseline_router.ab_verdict(same, {**base, "added_p50_us": 0.0})
    assert zero["within"]["added_p50_us"] is None and not zero["passes"]

    ab = {"ref": "abc^", "sha": "0123456789ab", "rounds": 3, "concurrency": 64,
          "current": slow, "baseline": base, "verdict": bad}  # fmt: skip
    md = baseline_router.markdown(ab)
    assert md is not None and "baseline = the router at `012345678`" in md
    assert "its own committed model" in md and "| 1.10× | **no** |" in md
    assert "req/s median, alternating rounds (64 clients, 1 worker) | 940 | 1,000 |" in md
    assert "interleaved" not in md  # no interleaved entry: no such rows
    heuristic = baseline_router.markdown({**ab, "scorer": "heuristic"})
    assert heuristic is not None and "both routers on the `heuristic` scorer" in heuristic
    assert "NOT within 5%: added_p50_us, rps_median" in md
    assert baseline_router.markdown(None) is None

    def with_interleaved(p50: float, p99: float) -> dict:
        entry = {"interleaved_added_us": {"p50": p50, "p99": p99}, "errors": 1}
        return baseline_router.side_summary([*_ab_rounds(400.0, 900.0, 1000.0), entry])

    cur, old = with_interleaved(430.0, 910.0), with_interleaved(400.0, 900.0)
    assert cur["interleaved_added_p50_us"] == 430.0 and cur["errors"] == 1
    assert cur["added_p50_us"] == 400.0  # the interleaved entry is not a round
    v = baseline_router.ab_verdict(cur, old)
    assert v["failed"] == ["interleaved_added_p50_us"]  # +7.5%
    assert v["ratios"]["interleaved_added_p99_us"] == pytest.approx(910 / 900)
    md = baseline_router.markdown({**ab, "current": cur, "baseline": old, "verdict": v})
    assert md is not None and "| added p50 ms, interleaved per request | 0.430 | 0.400 |" in md
    failed = baseline_router.markdown({"ref": "x", "sha": "f" * 40, "error": "ImportError: y"})
    assert failed is not None and "not measured: ImportError: y" in failed


def test_quality_quick(tmp_path: Path, model_dir: Path) -> None:
    assert bench_quality.main([*common_args(tmp_path), "--model-dir", str(model_dir)]) == 0
    res = load_doc(tmp_path, "quality")["results"]
    assert res["reference"]["routellm_mmlu_apgr"] == 0.603
    for bench in ("mmlu", "gsm8k"):
        scorers = res["routing"][bench]["scorers"]
        assert set(scorers) == set(bench_quality.SCORERS)
        # the oracle orders prompts perfectly: nothing beats it
        assert all(scorers["oracle"]["apgr"] >= m["apgr"] for m in scorers.values())
    for block in res["routing_lobo"].values():
        assert "oracle" in block["scorers"]
    share = res["tier_shares_sharegpt_test"]
    assert sum(share["learned"].values()) == pytest.approx(1.0)
    body = section(tmp_path / "B.md", "quality")
    assert "RouteLLM" in body and "**`learned`**" in body
    assert png_ok(tmp_path / "quality.png")


def test_multiturn_quick(tmp_path: Path, model_dir: Path) -> None:
    assert bench_multiturn.main([*common_args(tmp_path), "--model-dir", str(model_dir)]) == 0
    res = load_doc(tmp_path, "multiturn")["results"]
    assert set(res["sets"]) == {"sharegpt_later_turns", "handwritten_multiturn_test"}
    block = res["sets"]["sharegpt_later_turns"]
    assert block["n"] == bench_multiturn.QUICK.max_items
    views = block["views"]
    assert set(views) == {"last_turn", "follow_up<1300,context=300"}
    for scorer in ("learned", "heuristic"):
        assert views["last_turn"][scorer]["intent_changed"] == 0.0
        shares = views["follow_up<1300,context=300"][scorer]["tier_shares"]
        assert sum(shares.values()) == pytest.approx(1.0)
    assert "`sharegpt_later_turns`" in section(tmp_path / "B.md", "multiturn")


def test_embedding_quick(tmp_path: Path) -> None:
    assert bench_embedding.main(common_args(tmp_path)) == 0
    res = load_doc(tmp_path, "embedding")["results"]
    for emb in ("static", "minilm"):
        for kind in bench_embedding.STRONG_KINDS:
            row = res["strong"][f"{emb} {kind} C=0.001"]
            assert 0.0 <= row["correctness_worst"] <= row["correctness"] <= 1.0
    assert set(res["intent"]) == {"static linear", "static tuned", "minilm linear"}
    assert res["baselines"]["heuristic"]["intent"] > 0
    body = section(tmp_path / "B.md", "embedding")
    assert "`minilm gain C=0.001`" in body and "`heuristic`" in body


def test_training_quick(tmp_path: Path, model_dir: Path) -> None:
    assert bench_training.main(common_args(tmp_path)) == 0
    res = load_doc(tmp_path, "training")["results"]
    assert set(res["sizes"]) == {str(n) for n in bench_training.QUICK.sizes}
    for n, r in res["sizes"].items():
        assert r["rows"] == int(n)  # every perturbed copy is distinct
        assert r["total_seconds"] > 0 and r["onnx_bytes"] > 0
    assert section(tmp_path / "B.md", "training")
    assert png_ok(tmp_path / "training.png")


def test_run_all_runs_selected_benchmarks_and_writes_summary(tmp_path: Path) -> None:
    md = tmp_path / "B.md"
    argv = ["--quick", "--only", "proxy", "--out-dir", str(tmp_path), "--markdown", str(md)]
    assert run_all.main(argv) == 0
    load_doc(tmp_path, "proxy")
    summary = md.read_text(encoding="utf-8").split("<!-- bench:summary -->")[1]
    assert "router added latency" in summary and "No results yet" in summary
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nonsense"])


@pytest.mark.slow
def test_decision_latency_quick_with_transformer_baselines(tmp_path: Path, model_dir: Path) -> None:
    argv = [*common_args(tmp_path), "--model-dir", str(model_dir)]
    assert bench_decision_latency.main(argv) == 0
    res = load_doc(tmp_path, "decision_latency")["results"]
    assert res["not_measured"] == {}
    for scorer in ("learned_transformer", "minilm_sklearn"):
        assert res["latency_us"]["<=32"][scorer]["pooled"]["n"] > 0
    for scorer in ("learned_transformer", "minilm_sklearn"):
        rss = res["serving_rss"][scorer]
        assert "error" not in rss, rss
        assert rss["n_prompts"] > 0 and "torch" in rss["heavy_modules_loaded"]


def test_run_all_summary_only_rebuilds_the_summary_without_running(tmp_path: Path) -> None:
    import shutil

    from benchmarks.common import RESULTS_DIR

    shutil.copy(RESULTS_DIR / "proxy.json", tmp_path / "proxy.json")
    md = tmp_path / "B.md"
    assert run_all.main(["--summary-only", "--out-dir", str(tmp_path), "--markdown", str(md)]) == 0
    body = md.read_text(encoding="utf-8")
    assert "router added latency" in body and "No results yet: `decision_latency`" in body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B.md", "proxy.json"]


def test_ood_summary_rows_carry_the_bootstrap_interval_when_measured() -> None:
    learned = {"preference": 0.5, "preference_worst": 0.45}
    heuristic = {"preference": 0.51, "preference_worst": 0.46}
    doc = {"results": {"ood": {"summary": {"learned": learned, "heuristic": heuristic}}}}
    assert run_all.ood_rows(doc)[0][1:3] == ["0.500 / 0.450", "heuristic 0.510 / 0.460"]
    learned.update(preference_vs_heuristic_lo=-0.03, preference_vs_heuristic_hi=0.02)
    assert run_all.ood_rows(doc)[0][1] == (
        "0.500 / 0.450 (mean − heuristic, 95% CI [-0.030, +0.020])"
    )
