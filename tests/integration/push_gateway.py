"""A scripted push gateway on loopback (fixture ``gateway`` in ``conftest.py``).

It scripts its answers per mentor and counts requests (and successful
deliveries) by Idempotency-Key.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-gateway-token"
#: The worker's read timeout is 1 s: "hang" outlasts it (then answers 503, never
#: counted as delivered), "slow" does not (then answers 200).
HANG_S = 3.0
SLOW_S = 0.5


class Gateway:
    """A scripted push gateway on 127.0.0.1."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.delivered: Counter[str] = Counter()  # 2xx answers per Idempotency-Key
        self.scripts: dict[str, list[str]] = defaultdict(list)
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/push"

    def start(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                with gateway.lock:
                    gateway.requests.append(
                        {"key": key, "auth": self.headers.get("Authorization"), "body": body}
                    )
                    script = gateway.scripts[body.get("peer_mentor_id", "")]
                    action = script.pop(0) if script else "200"
                if action == "hang":
                    time.sleep(HANG_S)
                    action = "503"
                elif action == "slow":
                    time.sleep(SLOW_S)
                    action = "200"
                status = int(action)
                if 200 <= status < 300:
                    with gateway.lock:
                        gateway.delivered[key] += 1
                payload = json.dumps({"status": status}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the socket: connections are refused until :meth:`start` (same port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def answer(self, mentor: uuid.UUID, *actions: str) -> None:
        with self.lock:
            self.scripts[str(mentor)] = list(actions)

    def requests_for(self, key: uuid.UUID) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["key"] == str(key)]

    def requests_for_mentor(self, mentor: uuid.UUID) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["body"]["peer_mentor_id"] == str(mentor)]
