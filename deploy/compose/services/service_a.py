#!/usr/bin/env python3
"""Sample service A of the compose demo: instrumented the Jaeger way.

GET /checkout (any path) is handled in a span of its own: a new trace, or the
continuation of an incoming `uber-trace-id`. Service A then calls the next hop — the
gateway — passing its context as `uber-trace-id`, the only format it knows, and
reports its span to the OpenTelemetry Collector.

A real Jaeger client would report to Jaeger over Thrift; to stay dependency-free this
script reports the same span as OTLP/HTTP JSON (the collector's :4318/v1/traces), which
is honest about the ids and timing but not about the transport. It prints the trace
id it used, so you can find the trace in Jaeger's UI.

Python standard library only (and `common.py` beside it). Settings come from the environment
(see the defaults).
"""

import json
import os
import secrets
import time
import urllib.error
import urllib.request

from common import JsonHandler, logger, post_span, serve

PORT = int(os.environ.get("PORT", "8001"))
SERVICE_NAME = os.environ.get("SERVICE_NAME", "service-a")
NEXT_URL = os.environ.get("NEXT_URL", "http://tracebridge:8080/work")
OTLP_URL = os.environ.get("OTLP_URL", "http://otel-collector:4318/v1/traces")
JAEGER_UI = os.environ.get("JAEGER_UI", "http://localhost:16686")

log = logger(SERVICE_NAME)


def parse_uber_trace_id(value):
    """`{trace-id}:{span-id}:{parent-span-id}:{flags}` (hex) -> (trace, span, sampled) or None."""
    parts = (value or "").strip().split(":")
    if len(parts) != 4:
        return None
    trace, span, _parent, flags = parts
    try:
        if not (0 < len(trace) <= 32 and 0 < len(span) <= 16):
            return None
        if int(trace, 16) == 0 or int(span, 16) == 0:
            return None
        sampled = bool(int(flags, 16) & 0x1)
    except ValueError:
        return None
    return trace.lower().rjust(32, "0"), span.lower().rjust(16, "0"), sampled


def report_span(trace_id, span_id, parent_id, name, start_ns, end_ns, attributes):
    """Sends one SERVER span to the collector as OTLP/HTTP JSON."""
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 2,  # SPAN_KIND_SERVER
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(end_ns),
        "attributes": [
            {"key": key, "value": {"intValue": str(value)} if isinstance(value, int)
             else {"stringValue": str(value)}}
            for key, value in attributes.items()
        ],
    }
    if parent_id:
        span["parentSpanId"] = parent_id
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": SERVICE_NAME}},
            ]},
            "scopeSpans": [{"scope": {"name": "tracebridge-demo"}, "spans": [span]}],
        }]
    }
    post_span(OTLP_URL, body, log)


class Handler(JsonHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"status": "ok"})
        start_ns = time.time_ns()
        incoming = parse_uber_trace_id(self.headers.get("uber-trace-id"))
        if incoming:
            trace_id, parent_id, sampled = incoming
        else:
            trace_id, parent_id, sampled = secrets.token_hex(16), None, True
        span_id = secrets.token_hex(8)
        outgoing = f"{trace_id}:{span_id}:0:{'1' if sampled else '0'}"
        log(f"trace_id={trace_id} span_id={span_id} "
            f"{'continued' if incoming else 'new trace'}; calling {NEXT_URL} "
            f"with uber-trace-id: {outgoing}")
        call = urllib.request.Request(NEXT_URL, headers={"uber-trace-id": outgoing})
        try:
            with urllib.request.urlopen(call, timeout=5) as response:
                status, downstream = response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            status, downstream = e.code, {"error": e.read().decode(errors="replace")}
        except (urllib.error.URLError, OSError, ValueError) as e:
            status, downstream = 502, {"error": str(e)}
        code = 200 if status == 200 else 502
        if sampled:
            report_span(trace_id, span_id, parent_id, f"GET {self.path}", start_ns,
                        time.time_ns(), {
                            "http.request.method": "GET",
                            "url.path": self.path,
                            "http.response.status_code": code,
                            "demo.propagation.format": "jaeger",
                        })
        log(f"trace_id={trace_id}: open {JAEGER_UI}/trace/{trace_id}")
        self.reply(code, {
            "service": SERVICE_NAME,
            "trace_id": trace_id,
            "span_id": span_id,
            "sent": {"uber-trace-id": outgoing},
            "jaeger_ui": f"{JAEGER_UI}/trace/{trace_id}",
            "next_hop": downstream,
        })


if __name__ == "__main__":
    serve(PORT, Handler, log, f", next hop {NEXT_URL}")
