#!/usr/bin/env bash
# Two proxies on one CPU at the same time: CPU per request of each over the same seconds.
#
#   bash benches/load/together.sh [--scenario plain|b3-3] [--pairs N] [--duration S]
#                                 [--b-binary PATH] [--b-config PATH]
#
#   --scenario    the load bench's scenario (default plain): tracebridge's config from
#                 benches/load/ and the request header
#   --pairs N     measurements (default 12)
#   --duration S  seconds of each (default 4)
#   --b-binary, --b-config   B is a second tracebridge (this binary, this config; the
#                 defaults are target/release/tracebridge and the scenario's config)
#                 instead of nginx: an A/B of two builds or two configs
#   LOAD_PORT_BASE  environment: ports BASE+500 … BASE+504 (default 24000)
#
# Why: benches/load/run.sh runs each contestant alone, one after the other, and this
# machine's speed drifts by a third within minutes, so its side-by-side pairs resolve
# about ±7 %. Here A (tracebridge, target/release/tracebridge after `cargo build
# --release`) and B (nginx, benches/load/nginx.conf, or a second tracebridge) run at
# the same time, both pinned to CPU 1, each under its own `wrk -t1 -c25` on CPU 0
# against the same origin (benches/load_origin.rs, CPU 0). Both see the same machine at
# every moment, so drift cancels: CPU per request of each = delta of utime+stime
# (/proc/PID/stat) ÷ the requests its wrk completed, and the report is the median of
# A ÷ B over the pairs with a 90 % bootstrap interval. An A/A run (the same config on
# both sides) gave 0.997 (0.994–1.000) over 12 pairs, but one comparison repeated
# gave 1.025, then 0.996 and, sides swapped, 1.006: between invocations the result
# moves by about ±2.5 %, more than one invocation's interval says, so repeat a run
# before reading a difference of a few per cent. It measures cost, not req/s or
# latency (the two share a CPU). run.sh stays the method of the README's table.
#
# Everything runs on 127.0.0.1; the script kills exactly what it started. Needs wrk,
# nginx and curl (installed with apt-get when missing), python3, a Rust toolchain.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

scenario=plain pairs=12 duration=4 b_bin="" b_conf=""
while [ $# -gt 0 ]; do
    case "$1" in
    --scenario) scenario="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --b-binary) b_bin="$2"; shift 2 ;;
    --b-config) b_conf="$2"; shift 2 ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$pairs" =~ ^[1-9][0-9]*$ && "$duration" =~ ^[1-9][0-9]*$ ]] ||
    { echo "--pairs and --duration take positive integers" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs two CPUs (load on CPU 0, the proxies on CPU 1)" >&2; exit 1; }

# shellcheck source=benches/load/lib.sh
. "$here/lib.sh"
[[ "$scenario" == plain || "$scenario" == b3-3 ]] && scenario_config "$scenario" ||
    { echo "--scenario takes plain or b3-3" >&2; exit 2; }
install_missing wrk nginx curl

base="${LOAD_PORT_BASE:-24000}"
origin=$((base + 500)) port_a=$((base + 501)) admin_a=$((base + 502)) port_b=$((base + 503)) admin_b=$((base + 504))

echo "building (cargo build --release; the origin: cargo bench --bench load_origin --no-run)" >&2
(cd "$repo" && cargo build --release 2>"$tmp/build.log") || { tail -30 "$tmp/build.log" >&2; exit 1; }
origin_bin="$(bench_executable load_origin)"
[ -x "$origin_bin" ] || { echo "no load_origin executable in cargo's output" >&2; exit 1; }

render() { # template port admin dir
    mkdir -p "$4"
    sed -e "s|@PORT@|$2|g" -e "s|@ADMIN@|$3|g" -e "s|@ORIGIN@|$origin|g" -e "s|@TMP@|$4|g" "$1" >"$4/conf"
    echo "$4/conf"
}

taskset -c 0 "$origin_bin" --listen "127.0.0.1:$origin" >"$tmp/origin.log" 2>&1 &
pids+=($!)
taskset -c 1 "$repo/target/release/tracebridge" --config "$(render "$here/$conf" "$port_a" "$admin_a" "$tmp/a")" >"$tmp/a.log" 2>&1 &
pid_a=$!
pids+=("$pid_a")
if [ -n "$b_bin$b_conf" ]; then
    label="tracebridge ($b_bin${b_bin:+, }${b_conf:-$conf})"
    taskset -c 1 "${b_bin:-$repo/target/release/tracebridge}" \
        --config "$(render "${b_conf:-$here/$conf}" "$port_b" "$admin_b" "$tmp/b")" >"$tmp/b.log" 2>&1 &
    pid_b=$!
    pids+=("$pid_b")
else
    label="nginx"
    mkdir -p "$tmp/b/nginx-body"
    sed -e "s|@PORT@|$port_b|g" -e "s|@ORIGIN@|$origin|g" -e "s|@TMP@|$tmp/b|g" "$here/nginx.conf" >"$tmp/nginx.conf"
    taskset -c 1 nginx -e "$tmp/b/error.log" -p "$tmp/b" -c "$tmp/nginx.conf" &
    pids+=($!)
fi
wait_up "http://127.0.0.1:$origin/"
wait_up "http://127.0.0.1:$port_a/"
wait_up "http://127.0.0.1:$port_b/"
# nginx's worker (its master only waits).
[ "$label" = nginx ] && pid_b="$(pgrep -P "${pids[-1]}" | head -1)"

ticks() { local s; s="$(cat "/proc/$1/stat")"; s="${s##*) }"; read -ra f <<<"$s"; echo $((f[11] + f[12])); }
load() { # port out seconds
    taskset -c 0 wrk -t1 -c25 -d"$3s" "${header[@]}" "http://127.0.0.1:$1/" >"$2"
}
load "$port_a" "$tmp/warm-a" 1 &
wa=$!
load "$port_b" "$tmp/warm-b" 1
wait "$wa"
echo "A: tracebridge ($conf); B: $label; $scenario, $pairs × ${duration} s" >&2
: >"$tmp/pairs"
for ((i = 1; i <= pairs; i++)); do
    a0="$(ticks "$pid_a")" b0="$(ticks "$pid_b")"
    load "$port_a" "$tmp/wa" "$duration" &
    wa=$!
    load "$port_b" "$tmp/wb" "$duration" &
    wb=$!
    wait "$wa" "$wb"
    a1="$(ticks "$pid_a")" b1="$(ticks "$pid_b")"
    for side in a b; do
        grep -qE 'Non-2xx|Socket errors' "$tmp/w$side" && { echo "errors against $side:" >&2; cat "$tmp/w$side" >&2; exit 1; }
    done
    ra="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$tmp/wa")"
    rb="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$tmp/wb")"
    echo "$ra $((a1 - a0)) $rb $((b1 - b0))" | tee -a "$tmp/pairs" >&2
done
python3 - "$tmp/pairs" "$(getconf CLK_TCK)" "$label" "$scenario" <<'EOF'
import random, statistics, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1])]
tck = int(sys.argv[2])
us = lambda ticks, req: ticks / tck * 1e6 / req
cpu = [us(ta, ra) / us(tb, rb) for ra, ta, rb, tb in rows]
req = [ra / rb for ra, _, rb, _ in rows]
def interval(xs):
    rnd = random.Random(1)
    meds = sorted(statistics.median(rnd.choices(xs, k=len(xs))) for _ in range(4000))
    return f"{statistics.median(xs):.3f} ({meds[200]:.3f}–{meds[3799]:.3f})"
print(f"{sys.argv[4]}: tracebridge ÷ {sys.argv[3]}, {len(rows)} pairs, median and 90 % bootstrap interval")
print(f"  CPU per request: {interval(cpu)}  (A {statistics.median(us(t, r) for r, t, _, _ in rows):.1f} µs, "
      f"B {statistics.median(us(t, r) for _, _, r, t in rows):.1f} µs)")
print(f"  requests served in the same seconds: {interval(req)}")
EOF
