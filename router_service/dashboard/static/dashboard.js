// learned-router dashboard: GET dashboard/data every 3 s -> cards, SVG charts and tables.
// No dependencies and no build step. The key (when the router has keys configured) is
// asked for on a 401, kept in sessionStorage and sent as "Authorization: Bearer".
"use strict";

(() => {
  const KEY_STORE = "learned-router.dashboard.key";
  const POLL_MS = 3000;
  const TIERS = ["local", "primary", "strong"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const W = 460, H = 200, PAD = { l: 60, r: 8, t: 10, b: 24 };
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let inflight = false;
  let again = false; // a poll was asked for while one was in flight

  // -- DOM helpers ----------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function facts(dl, pairs) {
    dl.replaceChildren();
    for (const [term, value] of pairs) {
      dl.append(el("dt", null, term), el("dd", null, value));
    }
  }

  // -- formatting -----------------------------------------------------------------------
  const dash = "\u2014";
  function num(x, digits = 0) {
    return x === null || x === undefined ? dash : Number(x).toFixed(digits);
  }
  function usd(x) {
    if (x === null || x === undefined) return dash;
    const a = Math.abs(x);
    const digits = a === 0 ? 2 : a < 0.01 ? 6 : a < 1 ? 4 : 2;
    return (x < 0 ? "-$" : "$") + a.toFixed(digits);
  }
  function usdAxis(x) {
    return x === 0 ? "$0" : "$" + x.toPrecision(2);
  }
  function pct(x) {
    return x === null || x === undefined ? dash : (100 * x).toFixed(0) + "%";
  }
  function clock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  function errorText(body, status) {
    const e = body && body.error;
    return e && e.message ? e.message : "HTTP " + status;
  }

  // -- charts (inline SVG) --------------------------------------------------------------
  function frame(points, yMax, yFmt) {
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "plot" });
    const innerH = H - PAD.t - PAD.b;
    for (const f of [0, 0.5, 1]) {
      const y = PAD.t + innerH * (1 - f);
      root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid-line" }));
      root.append(svg("text", { x: PAD.l - 6, y: y + 4, class: "axis y" }, yFmt(yMax * f)));
    }
    const n = points.length;
    const ticks = n > 2 ? [0, Math.floor((n - 1) / 2), n - 1] : [...Array(n).keys()];
    for (const i of ticks) {
      root.append(svg("text", { x: xAt(i, n), y: H - 6, class: "axis x" }, clock(points[i].t)));
    }
    return root;
  }
  function xAt(i, n) {
    const innerW = W - PAD.l - PAD.r;
    return PAD.l + (n <= 1 ? innerW / 2 : (innerW * (i + 0.5)) / n);
  }
  function yAt(v, yMax) {
    const innerH = H - PAD.t - PAD.b;
    return PAD.t + innerH * (1 - (yMax > 0 ? v / yMax : 0));
  }
  function emptyChart(box, text) {
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot empty" });
    root.append(svg("text", { x: W / 2, y: H / 2, class: "axis empty-text" }, text));
    box.replaceChildren(root);
  }
  function stackedBars(box, points) {
    if (!points.length) return emptyChart(box, "no decisions in this window");
    const yMax = Math.max(1, ...points.map((p) => TIERS.reduce((s, t) => s + p[t], 0)));
    const root = frame(points, yMax, (v) => v.toFixed(yMax < 4 ? 1 : 0));
    const bw = Math.max(2, ((W - PAD.l - PAD.r) / points.length) * 0.7);
    points.forEach((p, i) => {
      let base = 0;
      for (const tier of TIERS) {
        if (!p[tier]) continue;
        const y0 = yAt(base, yMax), y1 = yAt(base + p[tier], yMax);
        const bar = svg("rect", { x: xAt(i, points.length) - bw / 2, y: y1, width: bw, height: y0 - y1, class: "bar tier-" + tier });
        bar.append(svg("title", {}, `${clock(p.t)} ${tier}: ${p[tier]}`));
        root.append(bar);
        base += p[tier];
      }
    });
    box.replaceChildren(root, legend(TIERS.map((t) => [t, "tier-" + t])));
  }
  function lines(box, points, series, yFmt, emptyText) {
    const values = series.flatMap((s) => points.map((p, i) => s.value(p, i)).filter((v) => v !== null));
    if (!values.length) return emptyChart(box, emptyText);
    const yMax = Math.max(...values) * 1.1 || 1;
    const root = frame(points, yMax, yFmt);
    for (const s of series) {
      const coords = [];
      points.forEach((p, i) => {
        const v = s.value(p, i);
        if (v !== null) coords.push([xAt(i, points.length), yAt(v, yMax), v, p.t]);
      });
      if (coords.length > 1) {
        const d = coords.map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join(" ");
        root.append(svg("path", { d, class: "line " + s.cls }));
      }
      for (const [x, y, v, t] of coords) {
        const dot = svg("circle", { cx: x, cy: y, r: 3, class: "dot " + s.cls });
        dot.append(svg("title", {}, `${clock(t)} ${s.label}: ${yFmt(v)}`));
        root.append(dot);
      }
    }
    box.replaceChildren(root, legend(series.map((s) => [s.label, s.cls])));
  }
  function legend(items) {
    const box = el("div", "legend");
    for (const [label, cls] of items) {
      const item = el("span", "legend-item");
      item.append(el("i", "swatch " + cls), document.createTextNode(label));
      box.append(item);
    }
    return box;
  }
  function cumulative(points, key) {
    let sum = 0;
    return points.map((p) => (sum += p[key]));
  }

  // -- sections -------------------------------------------------------------------------
  function renderHeader(d) {
    const m = d.model;
    const version = m.version ? "model " + m.version : "no model version";
    const parts = [`scorer ${m.scorer}`, version, `log ${d.log.window.dialect}`, `up ${num(d.process.uptime_s)} s`, `router ${d.process.version}`];
    if (m.fallback_reason) parts.push("FALLBACK: " + m.fallback_reason);
    $("model-line").textContent = parts.join(" \u00b7 ");
  }
  function renderCards(log) {
    const c = log.cost, l = log.latency;
    const cards = [
      ["decisions", num(log.window.rows), log.window.truncated ? "newest " + log.window.limit + " only" : "in the window"],
      ["estimated cost", usd(c.estimated_usd), c.rows_with_usage + " answers with usage"],
      ["always-strong cost", usd(c.strong_baseline_usd), "same tokens at the strong price"],
      ["saved", usd(c.saved_usd), c.saved_pct === null ? dash : c.saved_pct.toFixed(1) + "% of always-strong"],
      ["decision p50 / p99", `${num(l.decision_us.p50)} / ${num(l.decision_us.p99)} \u00b5s`, l.decision_us.n + " decisions"],
      ["upstream p50 / p99", `${num(l.upstream_ms.p50)} / ${num(l.upstream_ms.p99)} ms`, l.upstream_ms.n + " upstream calls"],
      ["fallbacks", num(log.fallbacks.requests), "requests that left a backend"],
      ["errors", num(log.errors), "answers with status >= 400"],
    ];
    $("cards").replaceChildren(...cards.map(([title, value, note]) => {
      const card = el("div", "card");
      card.dataset.card = title;
      card.append(el("span", "card-title", title), el("strong", "card-value", value), el("span", "card-note", note));
      return card;
    }));
  }
  function renderTierShares(log) {
    const box = $("tier-shares");
    const bar = el("div", "share-bar");
    const rows = [];
    for (const t of TIERS) {
      const share = log.tiers.shares[t];
      if (share) {
        const seg = el("span", "segment tier-" + t);
        seg.style.width = (100 * share).toFixed(2) + "%";
        seg.title = `${t}: ${pct(share)}`;
        bar.append(seg);
      }
      rows.push([t, `${log.tiers.counts[t]} (${pct(share)})`]);
    }
    const dl = el("dl", "facts");
    facts(dl, rows);
    box.replaceChildren(bar, dl);
    const l = log.latency;
    facts($("latency"), [
      ["total p50 / p99", `${num(l.total_ms.p50)} / ${num(l.total_ms.p99)} ms`],
      ["bucket", log.series.bucket_seconds + " s"],
    ]);
  }
  function renderBackends(backends) {
    $("backends").tBodies[0].replaceChildren(...backends.map((b) => {
      const tr = el("tr");
      tr.dataset.backend = b.name;
      const away = Object.entries(b.window.fallbacks);
      const circuit = el("span", "badge circuit-" + (b.enabled ? b.circuit : "disabled"), b.enabled ? b.circuit.replace("_", "-") : "disabled");
      circuit.title = b.enabled ? `${b.consecutive_failures} consecutive failures, ${b.failures} in all` : b.disabled_reason || "";
      const cells = [
        el("td", null, b.name), el("td", "tier-text-" + b.tier, b.tier), el("td"),
        el("td", "num", b.window.served), el("td", "num", b.window.errors),
        el("td", null, away.length ? away.map(([r, n]) => `${r} \u00d7${n}`).join(", ") : dash),
        el("td", "num", `${num(b.calls.ok)} / ${num(b.calls.error)}`), el("td", "num", num(b.p50_ms, 1)),
      ];
      cells[2].append(circuit);
      tr.append(...cells);
      return tr;
    }));
  }
  function renderModel(d) {
    const m = d.model, s = d.shadow;
    const pairs = [
      ["scorer", m.scorer], ["version", m.version || dash], ["model dir", m.model_dir || dash],
      ["reloads / refused", `${m.reloads} / ${m.refusals}`],
    ];
    if (m.last_reload) pairs.push(["last reload", `${m.last_reload.status}: ${m.last_reload.message || ""}`]);
    if (s.enabled) {
      pairs.push(
        ["shadow", `${s.candidate_scorer} ${s.candidate_version || ""}`.trim()],
        ["shadow scored", `${s.scored} (rate ${s.sample_rate}, dropped ${s.dropped})`],
        ["tier agreement", pct(s.agreement.tier)], ["intent agreement", pct(s.agreement.intent)],
        ["shadow cost diff", usd(s.estimated_cost_usd.difference)],
      );
    } else {
      pairs.push(["shadow", "none running"]);
    }
    facts($("model"), pairs);
  }
  function renderFeedback(f) {
    if (!f) return facts($("feedback"), [["feedback", "log unavailable"]]);
    const j = f.judge, u = f.user, p = j.preference;
    facts($("feedback"), [
      ["judge", `${j.total} (${j.ok} ok, ${j.failed} failed)`],
      ["judge mean score", num(j.mean_score, 2)],
      ["judge prefers", `cheap ${p.cheap} \u00b7 strong ${p.strong} \u00b7 tie ${p.tie}`],
      ["user", `${u.total} (${u.up} up, ${u.down} down, ${u.scored} scored)`],
      ["user mean score", num(u.mean_score, 2)],
    ]);
  }
  function renderDecisions(log) {
    const w = log.window;
    $("window-note").textContent = `${log.recent.length} newest of ${w.rows}`;
    $("decisions").tBodies[0].replaceChildren(...log.recent.map((r) => {
      const tr = el("tr", r.status >= 400 ? "failed" : "");
      tr.dataset.requestId = r.request_id;
      const id = el("td", "mono", r.request_id.slice(0, 12));
      id.title = r.request_id + (r.endpoint !== "chat" ? ` (${r.endpoint})` : "");
      tr.dataset.tier = r.tier || "";
      tr.dataset.servedTier = r.served_tier || "";
      const tier = el("td", "tiers");
      tier.append(el("span", "badge tier-" + r.tier, r.tier || dash));
      if (r.served_tier && r.served_tier !== r.tier) {
        const to = el("span", "badge tier-" + r.served_tier, "\u2192 " + r.served_tier);
        to.title = "answered by " + r.backend + " after a fallback";
        tier.append(" ", to);
      }
      const reason = el("td", "reason", r.reason || r.error || dash);
      reason.title = r.error || r.reason || "";
      tr.append(
        el("td", "mono", new Date(r.created_at).toLocaleTimeString()), id, el("td", null, r.intent || dash), tier,
        el("td", "num", num(r.strong_win_rate, 3)), reason, el("td", "num", num(r.decision_us)),
        el("td", "num", num(r.upstream_ms, 1)), el("td", "num", num(r.total_ms, 1)),
        el("td", "num", r.status), el("td", "fallback", r.fallbacks.length ? r.fallbacks.map((f) => f.split("/").pop()).join("; ") : dash),
      );
      return tr;
    }));
  }
  function render(d) {
    renderHeader(d);
    renderModel(d);
    renderBackends(d.backends);
    const log = d.log;
    if (log.error) {
      showError("decision log unavailable: " + log.error);
      renderFeedback(null);
      $("main").hidden = false;
      return;
    }
    $("error").hidden = true;
    const pts = log.series.points;
    renderCards(log);
    stackedBars($("chart-tiers"), pts);
    const routed = cumulative(pts, "cost_usd"), strong = cumulative(pts, "strong_baseline_usd");
    const withUsage = log.cost.rows_with_usage > 0;
    lines($("chart-cost"), pts, [
      { label: "routed", cls: "s-routed", value: (p, i) => (withUsage ? routed[i] : null) },
      { label: "always-strong", cls: "s-strong", value: (p, i) => (withUsage ? strong[i] : null) },
    ], usdAxis, "no token usage in this window");
    lines($("chart-latency"), pts, [
      { label: "p50", cls: "s-p50", value: (p) => p.upstream_ms_p50 },
      { label: "p99", cls: "s-p99", value: (p) => p.upstream_ms_p99 },
    ], (v) => v.toFixed(v < 10 ? 1 : 0), "no upstream calls in this window");
    renderTierShares(log);
    renderFeedback(log.feedback);
    renderDecisions(log);
    $("main").hidden = false;
  }

  // -- polling and the key --------------------------------------------------------------
  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = false;
  }
  function showAuth(text) {
    $("auth").hidden = false;
    $("auth-message").textContent = text;
    $("status").textContent = "waiting for a key";
    $("key").focus();
  }
  // -> whether to keep polling (not while waiting for a key).
  async function load() {
    const key = sessionStorage.getItem(KEY_STORE);
    const headers = key ? { Authorization: "Bearer " + key } : {};
    $("forget-key").hidden = !key;
    try {
      const res = await fetch("dashboard/data?window=" + encodeURIComponent($("window").value), { headers, cache: "no-store" });
      const body = await res.json().catch(() => null);
      if (res.status === 401) {
        if (key) sessionStorage.removeItem(KEY_STORE);
        $("forget-key").hidden = true;
        showAuth((key ? "That key was refused. " : "") + errorText(body, res.status));
        return false;
      }
      if (!res.ok) throw new Error(errorText(body, res.status));
      $("auth").hidden = true;
      render(body);
      $("status").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      showError("cannot load dashboard data: " + (err && err.message ? err.message : err));
      $("status").textContent = "retrying";
    }
    return true;
  }
  async function poll() {
    clearTimeout(timer);
    if (inflight) {
      again = true;
      return;
    }
    let more = true;
    if (!document.hidden) {
      inflight = true;
      try {
        more = await load();
      } finally {
        inflight = false;
      }
    }
    if (again) {
      again = false;
      poll();
    } else if (more) {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("auth").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY_STORE, $("key").value.trim());
      $("key").value = "";
      poll();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      poll();
    });
    $("window").addEventListener("change", poll);
    document.addEventListener("visibilitychange", () => document.hidden || poll());
    poll();
  });
})();
