#!/usr/bin/env python3
"""Writes the seed corpora: one file per reference vector into fuzz/corpus/<target>/.

Usage: python3 fuzz/seed.py     (from anywhere; rewrites the seed files, keeps the rest)

Each seed is the vector's headers as `Name: value` lines, the input format of
fuzz/src/lib.rs. A vector goes to the target of every format of its family (`b3`
vectors seed both `b3` and `b3multi`). Every target also gets `golden`: the fixed context
of tests/golden.rs as its format writes it, plus the optional fields the format can
carry (tracestate with a `tb` member, origin and tags, X-Ray extra parts, sw8-x, ...).
Instana has no reference vectors: it gets a few rows of its codec's own table
(src/codec/instana.rs).

The `http1_request` target (not a format) gets the raw requests of the corpus in
tests/http1_differential.rs: every row written as a byte-string literal, one file per row,
named after it.
"""

import json
import pathlib
import re

FUZZ = pathlib.Path(__file__).resolve().parent
VECTORS = FUZZ.parent / "tests" / "data" / "vectors.json"
HTTP1_CORPUS = FUZZ.parent / "tests" / "http1_differential.rs"

# A corpus row: ("name", b(b"bytes"), Expect...).
HTTP1_ROW = re.compile(r'\(\s*"([^"]+)",\s*b\(b"((?:[^"\\]|\\.)*)"\)')
RUST_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"', "'": b"'"}


def rust_bytes(literal):
    """The bytes of a Rust byte-string literal's body."""
    out = bytearray()
    i = 0
    while i < len(literal):
        c = literal[i]
        if c != "\\":
            out += c.encode()
            i += 1
        elif literal[i + 1] == "x":
            out.append(int(literal[i + 2 : i + 4], 16))
            i += 4
        else:
            out += RUST_ESCAPES[literal[i + 1]]
            i += 2
    return bytes(out)


def http1_seeds():
    d = FUZZ / "corpus" / "http1_request"
    d.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, literal in HTTP1_ROW.findall(HTTP1_CORPUS.read_text()):
        file = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        (d / file).write_bytes(rust_bytes(literal))
        count += 1
    return count

# Vector family -> fuzz targets (the format ids of Format::as_str).
TARGETS = {
    "w3c": ["tracecontext"],
    "w3c-baggage": ["baggage"],
    "b3": ["b3", "b3multi"],
    "jaeger": ["jaeger"],
    "ot": ["ottrace"],
    "xray": ["xray"],
    "datadog": ["datadog"],
    "xcloud": ["gcp"],
    "grpc-trace-bin": ["grpc-trace-bin"],
    "sw8": ["skywalking"],
    "eagleeye": ["eagleeye"],
}

# tests/golden.rs: trace 4bf92f35..., span b7ad6b7169203331, sampled, baggage
# tenant=acme, user=alice, as each format injects it, plus its optional fields.
GOLDEN = {
    "tracecontext": [
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"),
        (
            "tracestate",
            "tb=sw:NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY;ee:NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY;rpc:0.1,congo=t61rcWkgMzE",
        ),
    ],
    "baggage": [("baggage", "tenant=acme,user=alice;ttl=60")],
    "b3": [("b3", "4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-1")],
    "b3multi": [
        ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-spanid", "b7ad6b7169203331"),
        ("x-b3-sampled", "1"),
    ],
    "jaeger": [
        ("uber-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736:b7ad6b7169203331:0:1"),
        ("uberctx-tenant", "acme"),
        ("uberctx-user", "alice"),
        ("jaeger-baggage", "k1=v1, k2=v2"),
        ("jaeger-debug-id", "debug-1"),
    ],
    "skywalking": [
        (
            "sw8",
            "1-NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY="
            "-MTU2M2Y5ZWM2NzJlNzQwN2EzY2U5MjlkMGUwZTQ3MzY=-1-Z2F0ZXdheQ=="
            "-Z2F0ZXdheS0w-R0VUOi9hcGkvb3JkZXJz-b3JkZXJzLnN2Yzo4MDgw",
        ),
        ("sw8-correlation", "dGVuYW50:YWNtZQ==,dXNlcg==:YWxpY2U="),
        ("sw8-x", "1-1700000000000"),
    ],
    "datadog": [
        ("x-datadog-trace-id", "11803532876627986230"),
        ("x-datadog-parent-id", "13235353014750950193"),
        ("x-datadog-sampling-priority", "1"),
        ("x-datadog-origin", "synthetics"),
        ("x-datadog-tags", "_dd.p.tid=4bf92f3577b34da6,_dd.p.dm=-4"),
    ],
    "xray": [
        (
            "x-amzn-trace-id",
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=b7ad6b7169203331;Sampled=1;Self=1-67891234-12456789abcdef012345678;Lineage=a87bd80c:1|68fd508a:5",
        )
    ],
    "gcp": [("x-cloud-trace-context", "4bf92f3577b34da6a3ce929d0e0e4736/13235353014750950193;o=1")],
    "grpc-trace-bin": [("grpc-trace-bin", "AABL+S81d7NNpqPOkp0ODkc2Abeta3FpIDMxAgE")],
    "ottrace": [
        ("ot-tracer-traceid", "a3ce929d0e0e4736"),
        ("ot-tracer-spanid", "b7ad6b7169203331"),
        ("ot-tracer-sampled", "true"),
        ("ot-baggage-tenant", "acme"),
        ("ot-baggage-user", "alice"),
    ],
    "eagleeye": [
        ("eagleeye-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("eagleeye-spanid", "13235353014750950193"),
        ("eagleeye-rpcid", "0.1"),
        ("eagleeye-sampled", "1"),
        ("eagleeye-pappname", "gateway"),
        ("eagleeye-prpc", "GET:/api/orders"),
        ("eagleeye-userdata", "tenant=acme&user=alice"),
    ],
    "instana": [
        ("x-instana-t", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-instana-s", "b7ad6b7169203331"),
        ("x-instana-l", "1"),
    ],
}

# From the vector table of src/codec/instana.rs.
INSTANA = {
    "instana-001": [
        ("X-INSTANA-T", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("X-INSTANA-S", "e457b5a2e4d86bd1"),
        ("X-INSTANA-L", "1"),
    ],
    "instana-002": [
        ("X-INSTANA-T", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("X-INSTANA-S", "e457b5a2e4d86bd1"),
        ("X-INSTANA-L", "0"),
    ],
    "instana-004": [("X-INSTANA-L", "0")],
    "instana-007": [("x-instana-t", "10000000000001314"), ("X-INSTANA-S", "2435"), ("X-Instana-L", "1")],
    "instana-008": [
        ("X-Instana-T", "0000000000002435"),
        ("X-Instana-S", "0000000000003546"),
        ("X-Instana-L", "1,correlationType=web;correlationId=1234"),
    ],
    "instana-013": [("X-INSTANA-L", "1 , correlationType=web ; correlationId=abc")],
    "instana-024": [("X-INSTANA-T", "80f198ee56343ba8"), ("X-INSTANA-S", "e457b5a2e4d86bd1"), ("X-INSTANA-L", "2")],
}


def lines(pairs):
    return "".join(f"{name}: {value}\n" for name, value in pairs).encode()


def write(target, name, pairs):
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(lines(pairs))


def main():
    doc = json.loads(VECTORS.read_text())
    count = 0
    for v in doc["vectors"]:
        pairs = []
        for name, value in v["headers"].items():
            for item in value if isinstance(value, list) else [value]:
                pairs.append((name, item))
        for target in TARGETS[v["format"]]:
            write(target, v["id"], pairs)
            count += 1
    for target, pairs in GOLDEN.items():
        write(target, "golden", pairs)
        count += 1
    for name, pairs in INSTANA.items():
        write("instana", name, pairs)
        count += 1
    count += http1_seeds()
    print(f"wrote {count} seeds under {FUZZ / 'corpus'}")


if __name__ == "__main__":
    main()
