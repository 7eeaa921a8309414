"""``python health_sampler.py URL...``: GET each URL every 50 ms until stdin closes, then
print one JSON object {url: [seconds, ...]} on stdout.

A process of its own, so the latencies are the server's: a sampling thread inside a test
process that also runs a load generator waits for that process's GIL and event loop too."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def sample(url: str, out: list[float], stop: threading.Event) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    while not stop.is_set():
        t0 = time.perf_counter()
        conn.request("GET", parts.path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: HTTP {response.status}")
        out.append(time.perf_counter() - t0)
        stop.wait(0.05)


def main(urls: list[str]) -> None:
    stop = threading.Event()
    results: dict[str, list[float]] = {u: [] for u in urls}
    threads = [threading.Thread(target=sample, args=(u, results[u], stop)) for u in urls]
    for t in threads:
        t.start()
    print("READY", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    stop.set()
    for t in threads:
        t.join()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
