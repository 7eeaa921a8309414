"""The probe listener (ROUTER_PROBE_PORT): /health from its own thread, status only.

Its latency under a burst of answers is measured by ``test_load_saturation.py`` (slow)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx


def probe_url(router: Any) -> str:
    return f"http://127.0.0.1:{router.served.app.state.probe.port}"


def test_probe_port_answers_the_status_and_nothing_else(fakes, policy, make_router) -> None:
    router = make_router(policy, probe_port=0, api_keys=["key-a"], admin_key="admin-key")
    r = httpx.get(f"{probe_url(router)}/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}  # never the backends, hosts or reasons
    assert httpx.get(f"{probe_url(router)}/readyz").json() == {"status": "ok"}
    missing = httpx.get(f"{probe_url(router)}/v1/chat/completions")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    assert httpx.head(f"{probe_url(router)}/health").status_code == 200


def test_probe_port_says_degraded_like_health(fakes, policy, make_router, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "router.onnx").write_bytes(b"not an onnx graph")
    router = make_router(
        policy, probe_port=0, scorer="learned", model_dir=broken, model_watch_seconds=0
    )
    assert httpx.get(f"{router.url}/health").json()["status"] == "degraded"
    assert httpx.get(f"{probe_url(router)}/health").json() == {"status": "degraded"}


def test_probe_port_sees_a_tier_go_down_through_the_loops_re_probe(
    fakes, policy, make_router
) -> None:
    for tier in ("local", "primary", "strong"):  # every backend on a closed port
        for b in policy["tiers"][tier]["backends"]:
            b["base_url"] = "http://127.0.0.1:9/v1"
    router = make_router(policy, probe_port=0, health_cache_seconds=0.0)
    answers: list[str] = []

    def poll() -> None:  # from threads, as a kubelet would, while the loop is free
        for _ in range(50):
            answers.append(httpx.get(f"{probe_url(router)}/health").json()["status"])
            if answers[-1] == "degraded":
                return
            threading.Event().wait(0.1)

    poller = threading.Thread(target=poll)
    poller.start()
    poller.join()
    assert answers[-1] == "degraded", answers  # the probe asked the loop to re-probe


def test_no_probe_port_by_default(fakes, policy, make_router) -> None:
    router = make_router(policy)
    assert router.served.app.state.probe is None
