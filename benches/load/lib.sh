# Shared by callgrind.sh and together.sh, which source it: the scenarios, tool
# installation, a temporary directory whose processes are killed on exit, waiting for a
# server, and finding a bench binary.

# Sets `conf` (tracebridge's config in benches/load/) and `header` (wrk's and curl's
# arguments) for the load bench's scenario $1; false for an unknown one.
scenario_config() {
    local b3=(-H "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
    case "$1" in
    plain) conf=tracebridge-plain.toml header=() ;;
    b3-3) conf=tracebridge-b3.toml header=("${b3[@]}") ;;
    b3-3-otlp) conf=tracebridge-b3-otlp.toml header=("${b3[@]}") ;;
    *) return 1 ;;
    esac
}

# Installs with apt-get whichever of the named tools is not on PATH (packages of the same name).
install_missing() {
    local need=() tool
    for tool in "$@"; do command -v "$tool" >/dev/null || need+=("$tool"); done
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing ${need[*]}" >&2
        apt-get update -qq >&2 && apt-get install -y -qq "${need[@]}" >&2
    fi
}

# $tmp: a fresh directory; every PID added to `pids` is killed, and $tmp removed, on exit.
tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Waits up to 30 s for URL $1 to answer (with the scenario's header); exits the script if it never does.
wait_up() {
    for _ in $(seq 300); do
        curl -s -o /dev/null --max-time 1 "${header[@]}" "$1" && return 0
        sleep 0.1
    done
    echo "$1 did not come up" >&2
    exit 1
}

# Builds the bench target $1 (`harness = false`, in benches/) and prints its executable.
bench_executable() {
    (cd "$repo" && cargo bench --bench "$1" --no-run --message-format=json-render-diagnostics 2>"$tmp/$1-build.log") >"$tmp/$1.json" ||
        { tail -30 "$tmp/$1-build.log" >&2; return 1; }
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]==sys.argv[2]: print(m["executable"])' "$tmp/$1.json" "$1" | tail -1
}
