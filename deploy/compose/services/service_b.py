#!/usr/bin/env python3
"""Sample service B of the compose demo: instrumented the Zipkin way.

It understands B3 only: `x-b3-traceid` / `x-b3-spanid` / `x-b3-sampled` (or the single
`b3` header). Each request is handled in a span that continues that context (or starts
a new trace when there is none) and is reported to the collector's Zipkin receiver as
Zipkin v2 JSON (:9411/api/v2/spans) — the way a Zipkin-instrumented service reports.
The gateway in front of it turns service A's `uber-trace-id` into B3, so both spans
land in the same trace. It prints the ids it received and answers with them.

Python standard library only (and `common.py` beside it). Settings come from the environment
(see the defaults).
"""

import os
import secrets
import time

from common import JsonHandler, logger, post_span, serve

PORT = int(os.environ.get("PORT", "8002"))
SERVICE_NAME = os.environ.get("SERVICE_NAME", "service-b")
ZIPKIN_URL = os.environ.get("ZIPKIN_URL", "http://otel-collector:9411/api/v2/spans")

TRACE_HEADERS = ("b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
                 "x-b3-sampled", "x-b3-flags", "traceparent", "tracestate",
                 "uber-trace-id", "baggage")

log = logger(SERVICE_NAME)


def is_hex(value, max_len):
    try:
        return 0 < len(value) <= max_len and int(value, 16) != 0
    except ValueError:
        return False


def extract_b3(headers):
    """B3 multi or single header -> (trace, parent span, sampled) or None."""
    trace, span = headers.get("x-b3-traceid"), headers.get("x-b3-spanid")
    if trace and span:
        sampled = headers.get("x-b3-sampled", "1") == "1" or headers.get("x-b3-flags") == "1"
    elif headers.get("b3"):
        parts = headers["b3"].split("-")
        if len(parts) < 2:
            return None
        trace, span = parts[0], parts[1]
        sampled = len(parts) < 3 or parts[2] in ("1", "d")
    else:
        return None
    if not (is_hex(trace, 32) and is_hex(span, 16)):
        return None
    return trace.lower().rjust(32, "0"), span.lower().rjust(16, "0"), sampled


def report_span(trace_id, span_id, parent_id, name, start_us, duration_us, tags):
    """Sends one SERVER span in Zipkin v2 JSON."""
    span = {
        "traceId": trace_id,
        "id": span_id,
        "name": name,
        "kind": "SERVER",
        "timestamp": start_us,
        "duration": max(duration_us, 1),
        "localEndpoint": {"serviceName": SERVICE_NAME},
        "tags": tags,
    }
    if parent_id:
        span["parentId"] = parent_id
    post_span(ZIPKIN_URL, [span], log)


class Handler(JsonHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"status": "ok"})
        start_us = time.time_ns() // 1000
        received = {h: self.headers[h] for h in TRACE_HEADERS if self.headers.get(h)}
        context = extract_b3(self.headers)
        if context:
            trace_id, parent_id, sampled = context
        else:
            trace_id, parent_id, sampled = secrets.token_hex(16), None, True
        span_id = secrets.token_hex(8)
        log(f"trace_id={trace_id} parent_span_id={parent_id} span_id={span_id} "
            f"{'from B3' if context else 'no B3 context: new trace'}; received {received}")
        body = {
            "service": SERVICE_NAME,
            "trace_id": trace_id,
            "parent_span_id": parent_id,
            "span_id": span_id,
            "received_trace_headers": received,
        }
        self.reply(200, body)
        if sampled:
            report_span(trace_id, span_id, parent_id, f"get {self.path}", start_us,
                        time.time_ns() // 1000 - start_us, {
                            "http.method": "GET",
                            "http.path": self.path,
                            "http.status_code": "200",
                            "demo.propagation.format": "b3" if context else "none",
                        })


if __name__ == "__main__":
    serve(PORT, Handler, log)
