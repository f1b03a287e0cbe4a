"""A tiny offline quotes service for the examples, the notebook and the README tour.

``python -m linqra.demo --port 8100`` serves ``GET /api/people/random`` and
``GET /api/people`` (and ``GET /api/sleep?ms=200`` for parallelism demos) with
the standard library only.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["PEOPLE", "serve_quotes"]

PEOPLE = [
    {"fullName": "Marcus Aurelius", "born": 121, "school": "stoic", "language": "Greek"},
    {"fullName": "Seneca", "born": -4, "school": "stoic", "language": "Latin"},
    {"fullName": "Epictetus", "born": 50, "school": "stoic", "language": "Greek"},
    {"fullName": "Confucius", "born": -551, "school": "confucian", "language": "Chinese"},
]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/api/people/random":
            index = (
                int(query["i"]) if query.get("i", "").isdigit() else random.randrange(len(PEOPLE))
            )
            self._json(PEOPLE[index % len(PEOPLE)])
        elif parts.path == "/api/people":
            self._json({"people": PEOPLE})
        elif parts.path == "/api/sleep":
            ms = float(query.get("ms", "200"))
            time.sleep(min(ms, 10_000) / 1000)
            self._json({"slept_ms": ms})
        else:
            self._json({"error": f"no route {parts.path}"}, 404)

    def _json(self, body: object, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


def serve_quotes(port: int = 0, host: str = "127.0.0.1") -> tuple[str, Callable[[], None]]:
    """Start the service in a background thread; returns its base URL and a stop function."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://{host}:{server.server_address[1]}", stop


def main() -> None:
    parser = argparse.ArgumentParser(description="offline quotes service for Linqra examples")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    url, _ = serve_quotes(args.port)
    print(f"quotes service on {url}  (GET /api/people/random)", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
