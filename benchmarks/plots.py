"""Benchmark and evaluation results -> matplotlib figures (PNG files or inline in notebooks).

Every function takes plain data (the dicts the benchmarks and ``training.evaluate.report`` produce),
returns the ``Figure`` and, given a ``path``, also saves it as a PNG. The notebooks call
these same functions, so a picture in a notebook and in BENCHMARKS.md is drawn by one code
path."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

COLORS = {
    "learned": "#1f77b4",
    "heuristic": "#ff7f0e",
    "learned_transformer": "#9467bd",
    "minilm_sklearn": "#8c564b",
    "knn": "#2ca02c",
    "random": "#7f7f7f",
    "oracle": "#d62728",
    "direct": "#7f7f7f",
    "router": "#1f77b4",
}


def color(name: str) -> str | None:
    return COLORS.get(name)


def _save(fig: Any, path: Path | None) -> Any:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def latency_histograms(
    rounds: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    path: Path | None = None,
    title: str = "",
    targets: tuple[float, float] | None = None,
) -> Any:
    """{bucket: {scorer: [per-round µs samples]}} -> one log-x histogram panel per bucket."""
    buckets = [b for b, per in rounds.items() if any(per.values())]
    n = max(len(buckets), 1)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.6 * rows), squeeze=False)
    for ax, bucket in zip(axes.ravel(), buckets, strict=False):
        per = rounds[bucket]
        values = {k: np.concatenate([np.asarray(r) for r in v]) for k, v in per.items() if v}
        lo = max(min(float(v.min()) for v in values.values()), 0.5)
        hi = max(float(v.max()) for v in values.values())
        bins = np.logspace(np.log10(lo), np.log10(hi * 1.01), 60)
        for name, v in values.items():
            ax.hist(
                v,
                bins=bins,
                histtype="step",
                linewidth=1.6,
                weights=np.full(len(v), 1.0 / len(v)),
                color=color(name),
                label=f"{name} (p50 {np.percentile(v, 50):,.0f} µs, n={len(v)})",
            )
        if targets and bucket != "1MB":
            for t, style in zip(targets, ("--", ":"), strict=True):
                ax.axvline(t, color="black", linestyle=style, linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(f"prompts {bucket} tokens" if bucket != "1MB" else "1 MiB worst case")
        ax.set_xlabel("decision latency (µs, log)")
        ax.set_ylabel("share of calls")
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes.ravel()[len(buckets) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title + ("  (dashed: p50 target, dotted: p99 target)" if targets else ""))
    fig.tight_layout()
    return _save(fig, path)


def percentile_bars(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
    path: Path | None = None,
    title: str = "",
) -> Any:
    """{bucket: {scorer: rounds_summary entry}} -> grouped p50 bars with p99 whiskers (log y)."""
    buckets = list(summary)
    names: list[str] = []
    for per in summary.values():
        names += [n for n in per if n not in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        p50 = [summary[b].get(name, {}).get("pooled", {}).get("p50", np.nan) for b in buckets]
        p99 = [summary[b].get(name, {}).get("pooled", {}).get("p99", np.nan) for b in buckets]
        x = np.arange(len(buckets)) + j * width
        ax.bar(x, p50, width, color=color(name), label=f"{name} p50")
        ax.errorbar(
            x, p50, yerr=[np.zeros(len(p50)), np.subtract(p99, p50)], fmt="none", ecolor="black"
        )
    ax.set_xticks(np.arange(len(buckets)) + 0.4 - width / 2, buckets)
    ax.set_yscale("log")
    ax.set_ylabel("µs (bar p50, whisker p99)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def proxy_figure(
    rounds: Mapping[str, Sequence[Sequence[float]]],
    throughput: Mapping[str, Mapping[str, Any]],
    path: Path | None = None,
    target_rps: float = 1000.0,
) -> Any:
    """Left: one-at-a-time latency, router vs direct (log x). Right: req/s per setup."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    values = {k: np.concatenate([np.asarray(r) for r in v]) / 1000.0 for k, v in rounds.items()}
    lo = max(min(float(v.min()) for v in values.values()), 0.01)
    hi = max(float(v.max()) for v in values.values())
    bins = np.logspace(np.log10(lo), np.log10(hi * 1.01), 60)
    for name, v in values.items():
        ax1.hist(
            v,
            bins=bins,
            histtype="step",
            linewidth=1.6,
            weights=np.full(len(v), 1.0 / len(v)),
            color=color(name),
            label=f"{name}: p50 {np.percentile(v, 50):.2f} ms, p99 {np.percentile(v, 99):.2f} ms",
        )
    ax1.set_xscale("log")
    ax1.set_xlabel("request latency, one at a time (ms, log)")
    ax1.set_ylabel("share of requests")
    ax1.legend(fontsize=8)
    ax1.set_title("Added latency: router vs direct upstream")
    labels, rps, colors, errs = [], [], [], []
    for key, tp in throughput.items():
        for name in ("direct", "router"):
            t = tp[name]
            labels.append(f"{name}\n{key.replace('workers_', '')} worker(s)")
            rps.append(t["rps_median"])
            errs.append([t["rps_median"] - t["rps_min"], t["rps_max"] - t["rps_median"]])
            colors.append(color(name))
    x = np.arange(len(labels))
    ax2.bar(x, rps, color=colors, yerr=np.array(errs).T if errs else None, capsize=4)
    ax2.axhline(target_rps, color="black", linestyle="--", linewidth=0.8, label="target")
    ax2.set_xticks(x, labels, fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("req/s (median, range over rounds; log)")
    ax2.set_title("Throughput, non-streaming, logging on")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _curve_panel(
    ax: Any,
    block: Mapping[str, Any],
    title: str,
    reference: float | None,
    published_share: tuple[float, float] | None = None,
) -> None:
    """One eval set's quality-vs-cost curves; RouteLLM's published figures as references:
    the APGR in the legend, and (fraction, share) as a star at ``share`` strong calls and
    ``fraction`` of this set's strong-only accuracy."""
    for name, m in block["scorers"].items():
        c = m["curve"]
        ax.plot(
            c["strong_share"],
            c["accuracy"],
            color=color(name),
            linewidth=2.2 if name == "learned" else 1.3,
            linestyle=":" if name in ("random", "oracle") else "-",
            label=f"{name} (APGR {m['apgr']:.3f})",
        )
    ax.axhline(block["weak_accuracy"], color="grey", linewidth=0.7, linestyle="--")
    ax.axhline(block["strong_accuracy"], color="grey", linewidth=0.7, linestyle="--")
    ax.set_xlabel("share of prompts sent to the strong model (cost)")
    ax.set_ylabel("accuracy of the mix")
    ax.set_title(f"{title} (n={block['n']})", fontsize=10)
    if reference is not None:
        ax.plot([], [], " ", label=f"RouteLLM published APGR {reference:.3f}")
    if published_share is not None:
        fraction, share = published_share
        ax.plot(
            [share],
            [fraction * block["strong_accuracy"]],
            marker="*",
            markersize=13,
            color="black",
            linestyle="none",
            label=f"RouteLLM published: {fraction:.0%} of strong at ≤{share:.0%} strong calls",
        )
    ax.legend(fontsize=7, loc="lower right")


def _target_benchmark(title: str) -> str:
    """Panel title -> the benchmark its prompts come from ("mmlu->gsm8k (...)" -> gsm8k)."""
    head = title.split(" ", 1)[0]
    return head.split("->")[-1]


def quality_curves(results: Mapping[str, Any], path: Path | None = None) -> Any:
    """Quality-vs-cost curves: benchmark test splits (top) and leave-one-benchmark-out."""
    panels = [(f"{b} held-out test", blk) for b, blk in results["routing"].items()]
    panels += [
        (f"{p} (leave-one-benchmark-out)", blk) for p, blk in results["routing_lobo"].items()
    ]
    reference = results.get("reference", {})
    ref = reference.get("routellm_mmlu_apgr")
    shares = reference.get("routellm_announced_share95", {})
    fraction = reference.get("quality_fraction", 0.95)
    cols = 2
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 4.3 * rows), squeeze=False)
    for ax, (title, block) in zip(axes.ravel(), panels, strict=False):
        bench = _target_benchmark(title)
        share = shares.get(bench)
        _curve_panel(
            ax,
            block,
            title,
            ref if bench == "mmlu" else None,
            (fraction, share) if share is not None else None,
        )
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Quality vs cost (dashed: weak-only and strong-only accuracy)")
    fig.tight_layout()
    return _save(fig, path)


def apgr_bars(results: Mapping[str, Any], path: Path | None = None) -> Any:
    """APGR per scorer and eval set, with random (0.5) and RouteLLM's published MMLU APGR."""
    sets = {**results["routing"], **{f"{k} LOBO": v for k, v in results["routing_lobo"].items()}}
    names = ["random", "heuristic", "knn", "learned", "oracle"]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        vals = [blk["scorers"].get(name, {}).get("apgr", np.nan) for blk in sets.values()]
        ax.bar(np.arange(len(sets)) + j * width, vals, width, color=color(name), label=name)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ref = results.get("reference", {}).get("routellm_mmlu_apgr")
    if ref is not None:
        ax.axhline(ref, color="black", linewidth=0.8, linestyle="--", label=f"RouteLLM MMLU {ref}")
    ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, list(sets), fontsize=8)
    ax.set_ylabel("APGR")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return _save(fig, path)


def confusion_pair(
    reports: Mapping[str, Mapping[str, Any]], labels: Sequence[str], path: Path | None = None
) -> Any:
    """{scorer: intent_report} -> row-normalised confusion matrices side by side."""
    fig, axes = plt.subplots(1, len(reports), figsize=(7.5 * len(reports), 6.5), squeeze=False)
    for ax, (name, rep) in zip(axes.ravel(), reports.items(), strict=True):
        cm = np.asarray(rep["confusion"], np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        int(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f}")
    fig.tight_layout()
    return _save(fig, path)


def reliability(
    curves: Mapping[str, Mapping[str, Sequence[Any]]], path: Path | None = None, title: str = ""
) -> Any:
    """{label: {"confidence", "frequency", "count"}} -> reliability diagram (+ counts)."""
    fig, (ax, axc) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    width = 0.1 / max(len(curves), 1)
    for k, (label, c) in enumerate(curves.items()):
        conf = np.array([np.nan if v is None else v for v in c["confidence"]], np.float64)
        freq = np.array([np.nan if v is None else v for v in c["frequency"]], np.float64)
        ok = np.isfinite(conf) & np.isfinite(freq)
        ax.plot(conf[ok], freq[ok], marker="o", label=label)
        centers = (np.arange(len(c["count"])) + 0.5) / len(c["count"])
        axc.bar(centers + (k - (len(curves) - 1) / 2) * width, c["count"], width, label=label)
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    axc.set_xlabel("predicted probability")
    axc.set_ylabel("prompts")
    fig.tight_layout()
    return _save(fig, path)


def tier_share_bars(shares: Mapping[str, Mapping[str, float]], path: Path | None = None) -> Any:
    """{scorer: {tier: share}} -> stacked horizontal bars."""
    tiers = ("local", "primary", "strong")
    tier_colors = {"local": "#2ca02c", "primary": "#1f77b4", "strong": "#d62728"}
    names = [k for k, v in shares.items() if isinstance(v, Mapping)]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.2))
    left = np.zeros(len(names))
    for t in tiers:
        vals = np.array([shares[n].get(t, 0.0) for n in names])
        ax.barh(names, vals, left=left, color=tier_colors[t], label=t)
        for y, (lft, v) in enumerate(zip(left, vals, strict=True)):
            if v > 0.04:
                ax.text(lft + v / 2, y, f"{v:.0%}", ha="center", va="center", color="white")
        left += vals
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of requests")
    ax.legend(ncol=3, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def training_times(results: Mapping[str, Any], path: Path | None = None) -> Any:
    """Seconds per training stage vs number of prompts (log-log)."""
    sizes = sorted(int(n) for n in results["sizes"])
    stages = ["data", "embed_static", "fit_heads", "export_onnx"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for stage in stages:
        ax.plot(
            sizes,
            [results["sizes"][str(n)]["seconds"][stage] for n in sizes],
            marker="o",
            linewidth=1.2,
            label=stage,
        )
    ax.plot(
        sizes,
        [results["sizes"][str(n)]["total_seconds"] for n in sizes],
        marker="s",
        color="black",
        linewidth=2,
        label="total",
    )
    tr = results.get("embedding_same_prompts", {}).get("transformer", {})
    if tr.get("prompts_per_second"):
        ax.plot(
            sizes,
            [n / tr["prompts_per_second"] for n in sizes],
            linestyle="--",
            color=color("minilm_sklearn"),
            label="MiniLM embedding alone (extrapolated)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training prompts")
    ax.set_ylabel("seconds")
    ax.set_title("Training time by stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
