"""The live dashboard: ``GET /dashboard`` (a static page shipped in this package) fed by
``GET /dashboard/data`` (JSON over the decision log and the in-process state).

* ``static/``: ``index.html``, ``dashboard.js`` (no dependencies, charts drawn as inline
  SVG), ``dashboard.css``; package data, so a regular (non-editable) install ships them.
* ``query``: bounded reads of the decision log; ``summary``: rows -> aggregates (pure);
  ``data``: both joined with this process's state -> the JSON document.

``static_asset(name)`` -> (bytes, media type) of one of the page's files, or None."""

from __future__ import annotations

from functools import cache
from importlib import resources

ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


@cache
def static_asset(name: str) -> tuple[bytes, str] | None:
    """One of ``ASSETS`` -> (its bytes, its media type); any other name -> None."""
    media_type = ASSETS.get(name)
    if media_type is None:
        return None
    return (resources.files(__name__) / "static" / name).read_bytes(), media_type
