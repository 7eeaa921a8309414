"""``POST /v1/feedback``: user ratings of routed answers -> the feedback table."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import httpx
import openai

from router_service.logstore import create_decision_log


def routed_request_id(router: Any, **kw: Any) -> str:
    c = openai.OpenAI(base_url=router.base_url, api_key=kw.pop("key", "sk"), max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    raw.parse()
    return raw.headers["x-router-request-id"]


def post(router: Any, body: Any, **kw: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(f"{router.url}/v1/feedback", content=body, **kw)
    return httpx.post(f"{router.url}/v1/feedback", json=body, **kw)


def user_feedback(router: Any) -> list[dict[str, Any]]:
    log = create_decision_log(router.settings.database_url, router.settings.sqlite_path)
    try:
        return list(log.iter_feedback(source="user"))
    finally:
        log.close_sync()


def test_thumbs_and_scores_are_stored_and_replaced(fakes, policy, make_router) -> None:
    router = make_router(policy)
    rid = routed_request_id(router)
    r = post(router, {"request_id": rid, "thumbs": "down", "comment": "wrong year"})
    assert r.status_code == 200
    assert r.json() == {
        "object": "feedback",
        "request_id": rid,
        "source": "user",
        "thumbs": "down",
        "score": None,
        "stored": True,
    }
    rows = user_feedback(router)
    assert len(rows) == 1
    row = rows[0]
    assert (row["request_id"], row["source"], row["judge_model"]) == (rid, "user", "")
    assert (row["thumbs"], row["score"], row["rationale"], row["status"]) == (
        -1,
        None,
        "wrong year",
        "ok",
    )
    assert post(router, {"request_id": rid, "score": 9, "thumbs": "up"}).status_code == 200
    rows = user_feedback(router)
    assert len(rows) == 1 and (rows[0]["score"], rows[0]["thumbs"]) == (9, 1)


def test_unknown_request_id_is_404(fakes, policy, make_router) -> None:
    router = make_router(policy)
    r = post(router, {"request_id": "no-such-request", "thumbs": "up"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "request_not_found" and err["param"] == "request_id"
    assert user_feedback(router) == []


BAD_BODIES = [
    (b"", 400, None),
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    ({"thumbs": "up"}, 422, "request_id"),
    ({"request_id": "", "thumbs": "up"}, 422, "request_id"),
    ({"request_id": "r"}, 422, None),  # neither thumbs nor score
    ({"request_id": "r", "thumbs": "sideways"}, 422, "thumbs"),
    ({"request_id": "r", "score": 0}, 422, "score"),
    ({"request_id": "r", "score": 11}, 422, "score"),
    ({"request_id": "r", "score": "7"}, 422, "score"),
    ({"request_id": "r", "score": True}, 422, "score"),
    ({"request_id": "r", "score": 7.5}, 422, "score"),
    ({"request_id": "r", "score": 7, "stars": 5}, 422, "stars"),
    ({"request_id": "r", "score": 7, "comment": "x" * 5000}, 422, "comment"),
]


def test_bad_bodies_get_an_envelope(fakes, policy, make_router) -> None:
    router = make_router(policy)
    for body, status, param in BAD_BODIES:
        r = post(router, body)
        assert r.status_code == status, (body, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["type"] == "invalid_request_error"
        if param is not None:
            assert err["param"] == param, (body, err)
    assert user_feedback(router) == []


def test_feedback_needs_a_client_key_when_keys_are_set(fakes, policy, make_router) -> None:
    router = make_router(policy, api_keys=["sk-good"])
    rid = routed_request_id(router, key="sk-good")
    assert post(router, {"request_id": rid, "thumbs": "up"}).status_code == 401
    ok = post(
        router, {"request_id": rid, "thumbs": "up"}, headers={"Authorization": "Bearer sk-good"}
    )
    assert ok.status_code == 200


def test_feedback_right_after_the_answer_waits_for_its_row(fakes, policy, make_router) -> None:
    """Rows are committed after the answer by default; a rating posted meanwhile must still
    find its request. Another connection holds SQLite's write lock, so the row cannot land
    before the feedback arrives; it lands once the lock is released."""
    router = make_router(policy, log_wait=False)
    db = sqlite3.connect(
        router.settings.sqlite_path, timeout=10, isolation_level=None, check_same_thread=False
    )
    db.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, db.execute, ("COMMIT",))
    try:
        rid = routed_request_id(router)
        assert not db.execute(
            "SELECT 1 FROM decisions WHERE request_id = ?", (rid,)
        ).fetchall()  # not committed yet: the writer is blocked on the lock
        release.start()
        r = post(router, {"request_id": rid, "thumbs": "up"})
    finally:
        release.join()
        db.close()
    assert r.status_code == 200, r.text
    assert [row["request_id"] for row in user_feedback(router)] == [rid]
