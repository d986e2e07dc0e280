#!/usr/bin/env python3
"""Forwarding backend for running the W3C Trace Context test suite through tracebridge.

The suite's harness POSTs a JSON array of {"url", "arguments"} to the service under test. This
backend sits behind the gateway and, for each element in order, POSTs `arguments` (as JSON) to
`url`, copying `traceparent`, `tracestate` and `baggage` verbatim (every field, in order) from the
request it received. It never generates ids itself: all of that is the gateway's job.

The callback does not go to `url` directly but THROUGH the gateway: it is sent to the gateway's
address with `Host: <callback host>` and the path and query of `url`, and the gateway config routes
that host to the harness. So every callback is a new request through the gateway and gets its own
parent-id, as the harness's AdvancedTest expects (wire-formats §2.3).

Standard library only.

    backend.py --listen 127.0.0.1:5001 --gateway 127.0.0.1:5000 --callback-host harness.test
"""

import argparse
import http.client
import json
import signal
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gateway = ("127.0.0.1", 5000)
    callback_host = "harness.test"
    timeout_s = 5.0

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            actions = json.loads(body or b"[]")
        except ValueError:
            return self.reply(400, {"error": "body is not JSON"})
        if not isinstance(actions, list):
            actions = [actions]
        # Verbatim: every field of each trace header, in arrival order, value untouched.
        copied = [
            (name, value)
            for name in TRACE_HEADERS
            for value in (self.headers.get_all(name) or [])
        ]
        results = [self.call(action, copied) for action in actions if isinstance(action, dict)]
        self.reply(200, results)

    def call(self, action, copied):
        url = urllib.parse.urlsplit(action.get("url", ""))
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        payload = json.dumps(action.get("arguments") or []).encode()
        conn = http.client.HTTPConnection(*self.gateway, timeout=self.timeout_s)
        try:
            conn.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.callback_host)
            conn.putheader("Accept", "application/json")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(payload)))
            for name, value in copied:
                conn.putheader(name, value)
            conn.endheaders(payload)
            resp = conn.getresponse()
            resp.read()
            return {"url": action.get("url"), "status": resp.status}
        except OSError as err:
            return {"url": action.get("url"), "exception": type(err).__name__, "msg": str(err)}
        finally:
            conn.close()

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        if Handler.verbose:
            sys.stderr.write("backend: " + fmt % args + "\n")

    verbose = False


def host_port(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", type=host_port, required=True, help="HOST:PORT to listen on")
    p.add_argument("--gateway", type=host_port, required=True, help="HOST:PORT of the gateway")
    p.add_argument("--callback-host", default="harness.test",
                   help="Host header of the callbacks (a gateway route sends it to the harness)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per callback")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args()
    Handler.gateway = args.gateway
    Handler.callback_host = args.callback_host
    Handler.timeout_s = args.timeout
    Handler.verbose = args.verbose
    server = ThreadingHTTPServer(args.listen, Handler)
    server.daemon_threads = True
    # SIGTERM (what run.sh sends) ends serve_forever like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print("backend listening on http://%s:%d" % args.listen, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
