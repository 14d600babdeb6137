"""An OpenAI-compatible /v1/completions endpoint whose replies a test scripts: the judge a
test needs to rig (a val curve with a known peak, a verifier's verdicts), on a real socket,
so that stages in other processes reach it as they reach vLLM."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator


@contextlib.contextmanager
def completions_server(reply: Callable[[str], str]) -> Iterator[tuple[str, list]]:
    """Serve `reply(prompt) -> text` for the block; yields the base URL and the request
    bodies received, in order."""
    bodies: list = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            with lock:  # replies may count calls: one request at a time
                bodies.append(body)
                texts = [reply(p) for p in prompts]
            # Like vLLM: one choice per prompt, each with its index (here in reverse order).
            payload = json.dumps({"choices": [{"index": i, "text": t} for i, t in
                                              reversed(list(enumerate(texts)))]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
