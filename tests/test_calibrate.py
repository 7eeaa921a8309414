"""router_service.calibration and ``learned-router calibrate``: thresholds that hit target
tier shares on logged traffic, written back into the policy file."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest
import yaml

from router_service.calibration import (
    calibrate_thresholds,
    pretty_cut,
    replace_routing_intents,
    share_cut,
    tier_for,
    tier_shares,
)
from router_service.cli import main
from router_service.decision import Scores
from router_service.intents import INTENTS
from router_service.logstore import LogRow, create_decision_log
from router_service.policy import load_policy
from router_service.routing import RoutingPolicy, Thresholds, choose_tier

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"


def rows_for(
    intent: str, values: list[float], reason: str | None = None
) -> list[dict[str, object]]:
    return [
        {"intent": intent, "strong_win_rate": p, "reason": reason or f"{intent}: x"} for p in values
    ]


def uniform(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2, 0.5, 0.999, 1.0])
def test_share_cut_sends_exactly_that_share(share: float) -> None:
    values = sorted(uniform(1000, 1))
    t = share_cut(values, share)
    assert sum(v >= t for v in values) == round(1000 * share)
    assert 0.0 <= t <= 1.0


def test_share_cut_empty_follows_routellm_uniform_prior() -> None:
    assert share_cut([], 0.2) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        share_cut([0.5], 1.5)


def test_per_intent_with_enough_rows_else_global() -> None:
    math_rows = rows_for("math", uniform(400, 2))  # many rows: own cut
    chat_rows = rows_for("chitchat", [v * 0.3 for v in uniform(400, 3)])  # low win rates
    rare = rows_for("coding", [0.99] * 10)  # too few: the global cut
    cuts = calibrate_thresholds(math_rows + chat_rows + rare, 0.25, 0.25, min_rows_per_intent=50)
    assert set(cuts) == set(INTENTS)
    for name, rows in (("math", math_rows), ("chitchat", chat_rows)):
        values = [float(r["strong_win_rate"]) for r in rows]  # type: ignore[arg-type]
        tiers = [tier_for(p, cuts[name]) for p in values]
        assert tiers.count("strong") == 100 and tiers.count("primary") == 100
    all_values = sorted(
        float(r["strong_win_rate"])
        for r in math_rows + chat_rows + rare  # type: ignore[arg-type]
    )
    global_cut = (share_cut(all_values, 0.5), share_cut(all_values, 0.25))
    assert cuts["coding"] == global_cut == cuts["translation"]
    assert cuts["chitchat"][1] < cuts["math"][1]  # chitchat's own, much lower, cut


def test_global_only_mode() -> None:
    rows = rows_for("math", uniform(200, 4)) + rows_for("chitchat", uniform(200, 5))
    cuts = calibrate_thresholds(rows, 0.1, None, per_intent=False)
    assert len(set(cuts.values())) == 1


def test_pinned_forced_and_heuristic_rows_are_ignored() -> None:
    good = rows_for("math", uniform(100, 6))
    noise = (
        rows_for("math", [0.99] * 500, reason="privacy: sensitive request pinned to local")
        + rows_for("math", [0.99] * 500, reason="forced: strong")
        + rows_for("math", [0.99] * 500, reason="heuristic: complexity 80 >= 75")
        + [{"intent": "math", "strong_win_rate": None}, {"intent": "nope", "strong_win_rate": 0.5}]
        + [{"intent": "math", "strong_win_rate": float("nan")}]
    )
    assert calibrate_thresholds(good + noise, 0.3, 0.2) == calibrate_thresholds(good, 0.3, 0.2)


def test_without_primary_share_local_below_is_kept_and_clamped() -> None:
    rows = rows_for("math", uniform(300, 7))
    current = {"math": (0.2, 0.9), "coding": (0.95, 0.99)}
    cuts = calibrate_thresholds(rows, 0.5, None, current=current)
    assert cuts["math"][0] == 0.2
    assert cuts["coding"][0] == cuts["coding"][1]  # clamped to <= strong_above
    assert calibrate_thresholds(rows, 0.5)["math"][0] == 0.0  # no current: nothing local


def test_share_validation() -> None:
    with pytest.raises(ValueError, match="strong_share"):
        calibrate_thresholds([], 1.2)
    with pytest.raises(ValueError, match="primary_share"):
        calibrate_thresholds([], 0.6, 0.6)


def test_thresholds_route_like_choose_tier() -> None:
    rows = rows_for("reasoning", uniform(300, 8))
    cuts = calibrate_thresholds(rows, 0.2, 0.3)
    policy = RoutingPolicy(
        intents={k: Thresholds(local_below=a, strong_above=b) for k, (a, b) in cuts.items()}
    )
    for row in rows:
        p = float(row["strong_win_rate"])  # type: ignore[arg-type]
        scores = Scores(intent_scores={"reasoning": 1.0}, strong_win_rate=p)
        assert choose_tier(policy, scores)[0] == tier_for(p, cuts["reasoning"])
    shares = tier_shares([("reasoning", float(r["strong_win_rate"])) for r in rows], cuts)  # type: ignore[arg-type]
    assert shares == {
        "local": pytest.approx(0.5),
        "primary": pytest.approx(0.3),
        "strong": pytest.approx(0.2),
    }


def test_pretty_cut_keeps_the_split() -> None:
    values = sorted([0.1, 0.41, 0.4123, 0.9])
    assert pretty_cut(0.41115, values) == 0.411
    assert pretty_cut(0.7, values) == 0.7
    assert pretty_cut(0.55, values) == 0.55


def test_pretty_cut_with_slack_rounds_shorter_and_moves_at_most_that_many_rows() -> None:
    values = sorted(0.2 + i * 1e-6 for i in range(1000))  # dense scores: 0.200000 .. 0.200999
    cut = values[500] + 1e-7
    assert pretty_cut(cut, values) == round(cut, 9)  # an exact split needs 9 digits
    short = pretty_cut(cut, values, slack=10)
    assert short == 0.2005
    moved = abs(sum(v >= short for v in values) - sum(v >= cut for v in values))
    assert moved <= 10


# -- the policy file ---------------------------------------------------------------------

CUTS = {name: (0.25, 0.5) for name in INTENTS}


def test_replace_keeps_everything_else_of_the_default_policy() -> None:
    text = DEFAULT_POLICY.read_text()
    out = replace_routing_intents(text, CUTS, "calibrated")
    before, after = yaml.safe_load(text), yaml.safe_load(out)
    assert after["routing"]["intents"]["math"] == {"local_below": 0.25, "strong_above": 0.5}
    after["routing"].pop("intents")
    before["routing"].pop("intents", None)
    assert before == after
    kept = [ln for ln in text.splitlines() if ln.lstrip().startswith("#")]
    assert all(ln in out.splitlines() for ln in kept)  # every comment survives
    # Applying it twice replaces the block instead of adding another one.
    twice = replace_routing_intents(out, {k: (0.1, 0.2) for k in INTENTS})
    assert twice.count("intents:") == 1
    assert yaml.safe_load(twice)["routing"]["intents"]["coding"]["strong_above"] == 0.2


def test_replace_existing_block_between_keys() -> None:
    text = (
        "tiers: {}\nrouting:  # thresholds\n  default_tier: local\n  intents:\n"
        "    math: {local_below: 0.1, strong_above: 0.3}\n    # a comment\n"
        "    coding:\n      local_below: 0.1\n      strong_above: 0.3\n\n"
        "  # heuristic settings\n  heuristic:\n    threshold: 40\nfallback: {}\n"
    )
    out = replace_routing_intents(text, {"math": (0.2, 0.4)})
    data = yaml.safe_load(out)
    assert data["routing"] == {
        "default_tier": "local",
        "intents": {"math": {"local_below": 0.2, "strong_above": 0.4}},
        "heuristic": {"threshold": 40},
    }
    assert "  # heuristic settings\n" in out and data["fallback"] == {}


def test_replace_without_routing_section_appends_it() -> None:
    out = replace_routing_intents("tiers: {}", {"math": (0.2, 0.4)})
    assert yaml.safe_load(out) == {
        "tiers": {},
        "routing": {"intents": {"math": {"local_below": 0.2, "strong_above": 0.4}}},
    }


# -- the command -------------------------------------------------------------------------


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    """A SQLite decision log with 600 math and 600 chitchat decisions, plus pinned rows."""
    path = tmp_path / "router_logs.db"

    async def fill() -> None:
        log = create_decision_log(None, path)
        await log.start()
        rng = random.Random(9)
        rows = [
            LogRow(f"{intent}-{i}", intent=intent, strong_win_rate=rng.random() * scale,
                   tier="primary", reason=f"{intent}: x", scorer="learned")
            for intent, scale in (("math", 1.0), ("chitchat", 0.5)) for i in range(600)
        ]  # fmt: skip
        rows += [
            LogRow(f"p{i}", intent="math", strong_win_rate=0.99, reason="privacy: x")
            for i in range(50)
        ]
        await asyncio.gather(*(log.record(r) for r in rows))
        await log.close()

    asyncio.run(fill())
    return path


def policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "policy.yaml"
    target.write_text(DEFAULT_POLICY.read_text())
    return target


def test_cli_rewrites_policy_and_reports_shares(
    logged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_copy(tmp_path)
    code = main(["calibrate", "--strong-share", "0.2", "--primary-share", "0.3",
                 "--policy", str(policy), "--sqlite-path", str(logged)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "calibrating on 1200 decisions" in out
    assert "shares after:  local  50.0%  primary  30.0%  strong  20.0%" in out
    loaded = load_policy(policy)
    assert loaded.tiers["strong"].backends[0].name == "openai-4o"  # rest of the file intact
    math_cut = loaded.routing.intents["math"]
    assert 0.0 < math_cut.local_below < math_cut.strong_above < 1.0
    assert "# learned-router policy" in policy.read_text()  # comments kept
    assert "learned-router calibrate" in policy.read_text()  # provenance comment


def test_cli_dry_run_and_out(
    logged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_copy(tmp_path)
    original = policy.read_text()
    args = [
        "calibrate",
        "--strong-share",
        "0.1",
        "--policy",
        str(policy),
        "--sqlite-path",
        str(logged),
    ]
    assert main([*args, "--dry-run"]) == 0
    assert policy.read_text() == original
    assert "dry run" in capsys.readouterr().out
    other = tmp_path / "calibrated.yaml"
    assert main([*args, "--out", str(other), "--global"]) == 0
    assert policy.read_text() == original
    cuts = load_policy(other).routing.intents
    assert cuts["math"].strong_above == cuts["chitchat"].strong_above  # --global: one cut


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--strong-share", "0.7", "--primary-share", "0.5"], 2, "must be <= 1"),
        (["--strong-share", "0.2", "--since", "2999-01-01"], 1, "no calibratable decisions"),
        (["--strong-share", "0.2", "--min-rows-per-intent", "0"], 2, "min-rows"),
    ],
)
def test_cli_usage_errors(
    logged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], code: int, message: str,
) -> None:  # fmt: skip
    policy = policy_copy(tmp_path)
    assert (
        main(["calibrate", *extra, "--policy", str(policy), "--sqlite-path", str(logged)]) == code
    )
    assert message in capsys.readouterr().err


def test_cli_missing_log_and_bad_policy(
    tmp_path: Path, logged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_copy(tmp_path)
    args = ["calibrate", "--strong-share", "0.2", "--policy", str(policy)]
    assert main([*args, "--sqlite-path", str(tmp_path / "absent.db")]) == 2
    assert "no decision log at" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: {local: {backends: [{name: x}]}}\n")
    assert (
        main(
            [
                "calibrate",
                "--strong-share",
                "0.2",
                "--policy",
                str(bad),
                "--sqlite-path",
                str(logged),
            ]
        )
        == 2
    )
    assert "bad.yaml" in capsys.readouterr().err


def test_cli_rejects_bad_share(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--strong-share", "1.5"])
    assert exc.value.code == 2
    assert "within [0, 1]" in capsys.readouterr().err


def test_cli_calibrates_from_classify_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``classify --input`` lines (errors and junk lines skipped) stand in for the log."""
    rng = random.Random(3)
    lines = [
        json.dumps({"intent": "math", "strong_win_rate": rng.random(), "reason": "math: x"})
        for _ in range(400)
    ]
    lines += ['{"error": {"message": "bad line"}}', "not json", json.dumps([1, 2])]
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text("\n".join(lines) + "\n")
    policy = policy_copy(tmp_path)
    code = main(["calibrate", "--strong-share", "0.25", "--primary-share", "0.25",
                 "--policy", str(policy), "--decisions", str(decisions)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "calibrating on 400 decisions" in out
    assert "shares after:  local  50.0%  primary  25.0%  strong  25.0%" in out
    assert main(["calibrate", "--strong-share", "0.2", "--decisions", str(tmp_path / "no")]) == 2
    assert "cannot read" in capsys.readouterr().err
