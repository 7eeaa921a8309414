"""A routed chat answer (``run.forward``'s ``Outcome``) -> the client's own API: the whole
body through a renderer, or the stream through an ``EventWriter``.

Shared by the endpoints that speak another wire format over the chat pipeline (Responses,
Messages, legacy Completions); chat itself relays the backend's bytes untouched. Every path
keeps ``ChatRun``'s books: the status and error the log row records, the in-flight count
held until a relay ends, and a 502 (never a 500) when the backend's answer cannot be
translated."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from starlette.responses import Response

from router_service.api.responses import RelayResponse
from router_service.api.run import ChatRun, relay_events
from router_service.backends import UpstreamStream
from router_service.backends.answers import MALFORMED
from router_service.errors import ApiError
from router_service.upstream import Outcome


class EventWriter(Protocol):
    """Chat SSE events in -> the client API's events out (one writer per stream)."""

    @property
    def failure_message(self) -> str | None:
        """Why the stream failed (an upstream error event, a break, bad data), else None."""
        ...

    def start(self) -> list[bytes]: ...

    def feed(self, raw: bytes) -> list[bytes]: ...

    def upstream_failed(self, message: str, code: str) -> list[bytes]: ...

    def close(self) -> list[bytes]: ...


def relayed(
    run: ChatRun,
    events: AsyncGenerator[bytes, None],
    is_final: Callable[[bytes], bool] | None = None,
) -> Response:
    """Client events -> the streaming response; the run stays in flight until it ends.
    ``is_final``: the event a committed log row must precede (default: ``[DONE]``)."""
    run.state.inflight += 1  # released by run.finish once the relay ends
    options = {"is_final": is_final} if is_final is not None else {}
    return RelayResponse(
        events, run.headers(), run.finish, commit_first=run.state.settings.log_wait, **options
    )


def whole_answer(
    run: ChatRun,
    outcome: Outcome,
    render: Callable[[bytes], bytes],
    client_error: Callable[[bytes, int], bytes] | None = None,
) -> Response:
    """A non-streamed chat completion -> ``render``'s body (200). A backend's own client
    error (4xx, not retried) goes out with its status, re-wrapped by ``client_error`` when
    the API has its own envelope; an untranslatable completion is a 502."""
    completion = outcome.completion
    assert completion is not None
    run.status = completion.status
    backend = outcome.slot.backend.name
    if completion.status >= 400:
        run.error = f"backend {backend} answered HTTP {completion.status}"
        body = client_error(completion.body, completion.status) if client_error else None
        return run.logged(body if body is not None else completion.body, completion.status)
    try:
        rendered = render(completion.body)
    except MALFORMED as exc:
        raise ApiError(
            502,
            f"The backend {backend} answered with a chat completion that could not be "
            f"translated: {type(exc).__name__}: {exc}",
            code="upstream_error",
        ) from None
    return run.logged(rendered, 200)


async def relay_translated(
    run: ChatRun, stream: UpstreamStream, writer: EventWriter
) -> AsyncGenerator[bytes, None]:
    """The backend's chat stream -> the writer's events, ending with the writer's own
    failure events (and a 502 in the log row) when the backend fails or sends bad data."""
    for event in writer.start():
        yield event
    upstream = relay_events(run, stream, writer.upstream_failed)
    try:
        async for chunk in upstream:
            try:
                events = writer.feed(chunk)
            except MALFORMED as exc:
                writer.upstream_failed(f"malformed stream event: {exc}", "protocol_error")
                events = []
            for event in events:
                yield event
            if writer.failure_message is not None:  # an error event or a bad chunk
                break
    finally:
        await upstream.aclose()
    failure = writer.failure_message
    if failure is not None:
        run.relay_completed = True  # ended for the backend's error, not by the client
        if run.status < 400:
            run.status = 502
            run.error = f"mid-stream failure: {failure}"
    for event in writer.close():
        yield event
