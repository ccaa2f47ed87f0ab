"""A minimal OTLP/HTTP (JSON) trace receiver on a loopback port, for tests: collects the spans it is sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OtlpSink:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    payload = json.loads(body)
                    for resource_spans in payload.get("resourceSpans", []):
                        service = next(
                            (
                                a["value"].get("stringValue")
                                for a in resource_spans.get("resource", {}).get("attributes", [])
                                if a["key"] == "service.name"
                            ),
                            None,
                        )
                        for scope in resource_spans.get("scopeSpans", []):
                            with sink._lock:
                                sink.spans.extend({**s, "service": service} for s in scope.get("spans", []))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate: Any, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.1)
        return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
