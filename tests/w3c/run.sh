#!/usr/bin/env bash
# Runs the official W3C Trace Context test suite against tracebridge.
#
#   tests/w3c/run.sh PATH_TO_SUITE_TEST_DIR [test.py patterns...]
#
# PATH_TO_SUITE_TEST_DIR is the `test` folder of a clone of https://github.com/w3c/trace-context
# (it stays outside this repository). Needs python3 with aiohttp (`pip install aiohttp`).
#
# Starts, on free loopback ports, the gateway (built from this repository with cargo, or
# $TRACEBRIDGE_BIN) with tests/w3c/tracebridge.toml and the forwarding backend
# tests/w3c/backend.py, runs `SPEC_LEVEL=2 STRICT_LEVEL=2 python test.py` from the suite folder,
# prints a summary per test class, stops what it started and exits with the suite's status
# (the number of failed tests; 0 = all passed). SPEC_LEVEL, STRICT_LEVEL and PYTHON can be
# overridden from the environment.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/test.py" ]]; then
    echo "usage: $0 PATH_TO_SUITE_TEST_DIR [test.py patterns...]" >&2
    echo "  (the test/ folder of https://github.com/w3c/trace-context, containing test.py)" >&2
    exit 2
fi
suite=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}

if ! "$python" -c 'import aiohttp' 2>/dev/null; then
    echo "$python cannot import aiohttp: pip install aiohttp" >&2
    exit 2
fi

if [[ -n ${TRACEBRIDGE_BIN:-} ]]; then
    bin=$TRACEBRIDGE_BIN
else
    (cd "$repo" && cargo build --quiet --bin tracebridge)
    bin=${CARGO_TARGET_DIR:-$repo/target}/debug/tracebridge
    [[ $bin = /* ]] || bin=$repo/$bin
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tracebridge-w3c.XXXXXX")
gateway_pid=
backend_pid=
cleanup() {
    local pid
    # TERM, not INT: background jobs of a non-interactive shell start with SIGINT ignored.
    for pid in $backend_pid $gateway_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $backend_pid $gateway_pid; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Four free loopback ports: gateway, admin, backend, harness.
read -r gw_port admin_port backend_port harness_port < <("$python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)

config=$work/tracebridge.toml
sed -e "s/127\.0\.0\.1:5000/127.0.0.1:$gw_port/" \
    -e "s/127\.0\.0\.1:5009/127.0.0.1:$admin_port/" \
    -e "s/127\.0\.0\.1:5001/127.0.0.1:$backend_port/" \
    -e "s/127\.0\.0\.1:7777/127.0.0.1:$harness_port/" \
    -e "s|/tmp/tracebridge-w3c\.sock|$work/upgrade.sock|" \
    -e "s|/tmp/tracebridge-w3c\.pid|$work/tracebridge.pid|" \
    "$here/tracebridge.toml" >"$config"
"$bin" check --config "$config" >/dev/null

RUST_LOG=${RUST_LOG:-warn} "$bin" --config "$config" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
"$python" "$here/backend.py" --listen "127.0.0.1:$backend_port" \
    --gateway "127.0.0.1:$gw_port" --callback-host harness.test >"$work/backend.log" 2>&1 &
backend_pid=$!

# Wait for the gateway (/readyz on the admin listener) and the backend to listen.
"$python" - "$admin_port" "$backend_port" <<'PY'
import socket, sys, time, urllib.request
admin, backend = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
def ready():
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % admin, timeout=1) as r:
            if r.status != 200:
                return False
        socket.create_connection(("127.0.0.1", backend), timeout=1).close()
        return True
    except OSError:
        return False
while not ready():
    if time.monotonic() > deadline:
        sys.exit("gateway or backend did not start within 30 s")
    time.sleep(0.1)
PY

echo "gateway 127.0.0.1:$gw_port (admin $admin_port), backend 127.0.0.1:$backend_port, harness 127.0.0.1:$harness_port"
set +e +o pipefail
(
    cd "$suite"
    SPEC_LEVEL=${SPEC_LEVEL:-2} STRICT_LEVEL=${STRICT_LEVEL:-2} \
        HARNESS_HOST=127.0.0.1 HARNESS_PORT=$harness_port \
        "$python" test.py "http://127.0.0.1:$gw_port/" "$@"
) 2>&1 | tee "$work/suite.log"
status=${PIPESTATUS[0]}
set -e -o pipefail

echo
echo "== summary (SPEC_LEVEL=${SPEC_LEVEL:-2} STRICT_LEVEL=${STRICT_LEVEL:-2}) =="
"$python" - "$work/suite.log" <<'PY'
import collections, re, sys
# unittest verbose output: "test_x (__main__.Class.test_x)" (3.11+; "(__main__.Class)" before),
# then " ... ok" / "FAIL" / "ERROR" / "skipped '...'" at the end of that line or of the docstring
# line, or (with HARNESS_DEBUG, after the dump) alone on a line.
header = re.compile(r"^(test\w*) \(__main__\.(\w+)(?:\.\w+)?\)")
outcome = re.compile(r"(?:^|\.\.\. )(ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$")
counts = collections.OrderedDict()
pending = None
for text in open(sys.argv[1], errors="replace"):
    text = text.rstrip("\n")
    m = header.match(text)
    if m:
        pending = m.group(2)
    o = outcome.search(text)
    if o and pending:
        word = o.group(1)
        key = "passed" if word == "ok" else "skipped" if word.startswith("skipped") else "failed"
        counts.setdefault(pending, collections.Counter())[key] += 1
        pending = None
total = collections.Counter()
def show(name, c):
    extra = " (%d skipped)" % c["skipped"] if c["skipped"] else ""
    print("%-18s %d/%d passed%s" % (name, c["passed"], c["passed"] + c["failed"], extra))
for cls, c in counts.items():
    total.update(c)
    show(cls, c)
show("total", total)
PY

if [[ $status -ne 0 ]]; then
    echo
    echo "== gateway log (last 20 lines) =="
    tail -n 20 "$work/gateway.log" || true
    echo "== backend log (last 20 lines) =="
    tail -n 20 "$work/backend.log" || true
fi
exit "$status"
