#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind over the whole gateway process.
#
#   bash benches/load/callgrind.sh [--scenario plain|b3-3|b3-3-otlp] [--fallback] [--nginx] [--duration S]
#
#   --scenario   the load bench's scenario (default plain): its tracebridge config from
#                benches/load/ and its request header
#   --fallback   the same with `[server] fast_path = false` (every request through
#                pingora-proxy): the before/after comparison of the fast path
#   --nginx      count nginx (benches/load/nginx.conf, one worker) instead, as the reference
#   --duration S seconds of load after the warm-up (default 10)
#
# Method: the origin is nginx `return 200` (origin-nginx.conf). The contestant runs under
# `valgrind --tool=callgrind` with instrumentation off; after a warm-up of 200 requests the
# counters are switched on (`callgrind_control -i on`), `wrk -t1 -c50` runs for S seconds,
# and the counters are dumped. Instructions per request = the dump's total Ir (every
# thread of the process) / the requests wrk completed. Everything runs on 127.0.0.1 on
# ports LOAD_PORT_BASE+400..+403 (default 24400...); the script stops exactly what it
# started. Needs valgrind, wrk, nginx, curl (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
scenario=plain fallback=0 nginx_ref=0 duration=10
while [ $# -gt 0 ]; do
    case "$1" in
    --scenario) scenario="$2"; shift 2 ;;
    --fallback) fallback=1; shift ;;
    --nginx) nginx_ref=1; shift ;;
    --duration) duration="$2"; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
# shellcheck source=benches/load/lib.sh
. "$repo/benches/load/lib.sh"
scenario_config "$scenario" || { echo "unknown scenario $scenario" >&2; exit 2; }
install_missing valgrind wrk nginx curl

base="${LOAD_PORT_BASE:-24000}"
origin=$((base + 400)) port=$((base + 401)) admin=$((base + 402)) sink=$((base + 403))

render() {
    sed -e "s|@PORT@|$port|g" -e "s|@ADMIN@|$admin|g" -e "s|@ORIGIN@|$origin|g" \
        -e "s|@TMP@|$tmp|g" -e "s|@SINK_HTTP@|$sink|g" -e "s|@SINK_GRPC@|$sink|g" \
        "$repo/benches/load/$1" >"$tmp/$1"
    echo "$tmp/$1"
}

mkdir -p "$tmp/origin-body" "$tmp/nginx-body"
nginx -e "$tmp/origin.err" -p "$tmp" -c "$(render origin-nginx.conf)" &
pids+=($!)
wait_up "http://127.0.0.1:$origin/"

if [ "$scenario" = b3-3-otlp ]; then
    sink_bin="$(bench_executable load_sink)"
    "$sink_bin" --http "127.0.0.1:$sink" >"$tmp/sink.log" 2>&1 &
    pids+=($!)
fi

out="$tmp/callgrind.out"
if [ "$nginx_ref" = 1 ]; then
    label="nginx (one worker)"
    # One process: the worker runs in the master (master_process off), so callgrind sees it.
    sed -e 's/^daemon off;/daemon off;\nmaster_process off;/' "$(render nginx.conf)" >"$tmp/nginx-cg.conf"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        nginx -e "$tmp/nginx.err" -p "$tmp" -c "$tmp/nginx-cg.conf" 2>"$tmp/valgrind.log" &
else
    cargo build --release 2>"$tmp/build.log" || { cat "$tmp/build.log" >&2; exit 1; }
    cfg="$(render "$conf")"
    label="tracebridge $scenario, fast path"
    if [ "$fallback" = 1 ]; then
        sed -i 's/^threads = 1$/threads = 1\nfast_path = false/' "$cfg"
        label="tracebridge $scenario, fallback (fast_path = false)"
    fi
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$repo/target/release/tracebridge" --config "$cfg" 2>"$tmp/valgrind.log" >"$tmp/tb.log" &
fi
vg=$!
pids+=("$vg")
wait_up "http://127.0.0.1:$port/"
for _ in $(seq 200); do curl -s -o /dev/null "${header[@]}" "http://127.0.0.1:$port/"; done
callgrind_control -i on "$vg" >/dev/null
result="$(wrk -t1 -c50 -d"${duration}s" "${header[@]}" "http://127.0.0.1:$port/")"
callgrind_control -d "$vg" >/dev/null
callgrind_control -i off "$vg" >/dev/null
requests="$(echo "$result" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')"
errors="$(echo "$result" | grep -E 'Non-2xx|Socket errors' || true)"
# The dump callgrind_control asked for ($out.1): its totals line, "summary: N".
dump=""
for _ in $(seq 100); do
    dump="$(ls "$out".* 2>/dev/null | head -1)"
    [ -n "$dump" ] && grep -q '^summary:' "$dump" && break
    sleep 0.1
done
[ -n "$dump" ] || { echo "no callgrind dump" >&2; exit 1; }
ir="$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$dump" | head -1)"
mkdir -p "$repo/target/load"
keep="$repo/target/load/callgrind-$scenario-$([ "$nginx_ref" = 1 ] && echo nginx || ([ "$fallback" = 1 ] && echo fallback || echo fast)).out"
cp "$dump" "$keep"
echo "$label: $requests requests, $ir instructions, $((ir / requests)) per request${errors:+ ($errors)}"
echo "profile: callgrind_annotate $keep"
