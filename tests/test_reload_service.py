"""Hot reload in the running service: ``POST /admin/reload`` (auth, refusals) and the file
watch, with concurrent requests through the openai SDK that must all succeed and each be
routed consistently by the model version its header names."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fakes.loop_models import INTENT_OF, build_versions, write_model
from router_service.model_store import publish_model_dir

ADMIN = "admin-secret"


@pytest.fixture
def builds(tmp_path: Path) -> dict[str, Path]:
    return build_versions(tmp_path / "builds")


@pytest.fixture
def serve_dir(tmp_path: Path, builds: dict[str, Path]) -> Path:
    return publish_model_dir(builds["v1"], tmp_path / "serve" / "default")


def start(make_router: Any, policy: Any, serve_dir: Path, **kw: Any) -> Any:
    settings = {"scorer": "learned", "model_dir": serve_dir, "model_watch_seconds": 0, **kw}
    return make_router(policy, **settings)


def ask(router: Any) -> httpx.Headers:
    c = openai.OpenAI(base_url=router.base_url, api_key="sk", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello there"}]
    )
    raw.parse()
    return raw.headers


def reload(router: Any, key: str | None = ADMIN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{router.url}/admin/reload", headers=headers, timeout=30)


def health_version(router: Any) -> str:
    headers = {"X-Admin-Key": ADMIN}  # with keys set, others see the status only
    return httpx.get(f"{router.url}/health", headers=headers, timeout=10).json()["scorer"][
        "version"
    ]


def test_admin_reload_needs_the_key_and_is_absent_without_one(
    fakes, policy, make_router, serve_dir
) -> None:
    open_router = start(make_router, policy, serve_dir)
    r = reload(open_router)
    assert r.status_code == 404 and r.json()["error"]["code"] == "admin_disabled"
    router = start(make_router, policy, serve_dir, admin_key=ADMIN)
    for key in (None, "wrong"):
        r = reload(router, key)
        assert r.status_code == 401
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = reload(router)
    assert r.status_code == 200 and r.json()["version"] == "v1"
    status = httpx.get(f"{router.url}/admin/model", headers={"Authorization": f"Bearer {ADMIN}"})
    assert status.json()["version"] == "v1" and status.json()["reloads"] == 1


def test_reload_under_concurrent_requests(fakes, policy, make_router, builds, serve_dir) -> None:
    router = start(make_router, policy, serve_dir, admin_key=ADMIN)
    assert ask(router)["x-router-model-version"] == "v1"
    results: list[tuple[float, str, str]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def client_loop() -> None:
        while not stop.is_set():
            try:
                started = time.monotonic()
                h = ask(router)
                results.append((started, h["x-router-model-version"], h["x-router-intent"]))
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=client_loop) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        while len(results) < 20:
            time.sleep(0.01)
        publish_model_dir(builds["v2"], serve_dir)
        r = reload(router)
        reloaded_at = time.monotonic()
        assert r.status_code == 200 and r.json()["previous"] == "v1"
        assert r.json()["version"] == "v2"
        n = len(results)
        while len(results) < n + 20:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert all(INTENT_OF[v] == intent for _, v, intent in results)  # never a mixed model
    assert {v for _, v, _ in results} == {"v1", "v2"}
    assert all(v == "v2" for started, v, _ in results if started > reloaded_at)
    assert health_version(router) == "v2"


def test_corrupt_model_is_refused_over_http(
    fakes, policy, make_router, serve_dir, tmp_path
) -> None:
    router = start(make_router, policy, serve_dir, admin_key=ADMIN)
    bad = write_model(tmp_path / "bad", "v-bad")
    (bad / "router.onnx").write_bytes(b"not an onnx file")
    publish_model_dir(bad, serve_dir)
    r = reload(router)
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "model_refused" and "still serving v1" in err["message"]
    assert ask(router)["x-router-model-version"] == "v1"
    assert health_version(router) == "v1"


def test_file_watch_picks_up_a_published_model(
    fakes, policy, make_router, builds, serve_dir
) -> None:
    router = start(make_router, policy, serve_dir, model_watch_seconds=0.05)
    assert ask(router)["x-router-model-version"] == "v1"
    publish_model_dir(builds["v3"], serve_dir)
    deadline = time.monotonic() + 20
    while health_version(router) != "v3" and time.monotonic() < deadline:
        time.sleep(0.05)
    h = ask(router)
    assert (h["x-router-model-version"], h["x-router-intent"]) == ("v3", "math")


def test_heuristic_service_refuses_reload(fakes, policy, make_router) -> None:
    router = make_router(policy, admin_key=ADMIN)  # conftest default: heuristic scorer
    r = reload(router)
    assert r.status_code == 409 and "heuristic" in r.json()["error"]["message"]
