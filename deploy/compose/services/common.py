"""What the two sample services of the compose demo share: logging, JSON replies,
span reports POSTed as JSON, and the server loop. Python standard library only.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = os.environ.get("HOST", "0.0.0.0")


def logger(service_name):
    """A `log(message)` that prefixes the service's name, on stderr."""
    def log(message):
        print(f"[{service_name}] {message}", file=sys.stderr, flush=True)
    return log


def post_span(url, payload, log):
    """POSTs a span report as JSON; a collector that cannot be reached is logged, not raised."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            response.read()
    except (urllib.error.URLError, OSError) as e:
        log(f"could not report span to {url}: {e}")


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON and keeps the access log quiet."""

    def reply(self, code, body):
        data = (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def serve(port, handler, log, note=""):
    """Serves `handler` on HOST:port until killed."""
    server = ThreadingHTTPServer((HOST, port), handler)
    log(f"listening on :{server.server_address[1]}{note}")
    server.serve_forever()
