#!/bin/sh
# Zero-downtime binary upgrade of a running tracebridge (pingora's mechanism), written
# for the unit's ExecReload= but usable by hand:
#
#   tracebridge-upgrade.sh BINARY CONFIG PIDFILE
#
# 1. `BINARY check --config CONFIG`: a config the new binary rejects changes nothing.
# 2. Start `BINARY --config CONFIG --upgrade` in the background; it listens on the
#    config's `server.upgrade_sock` for the old process's listening sockets.
# 3. Once that socket exists, write the new PID to PIDFILE (before the old process can
#    exit, so systemd, which re-reads PIDFile=, follows the new process), then SIGQUIT
#    the old process: it sends its sockets over, keeps serving for 5 s, then drains and
#    exits. No connection is refused in between.
# 4. Wait until the new process has taken the sockets (it removes the upgrade socket)
#    and is still running.
#
# The old process is $MAINPID (systemd sets it for ExecReload=), else PIDFILE's PID.
# Exit 0: upgraded. Exit 1: nothing changed (the old process still serves), except
# when the new process fails after taking the sockets (reported; the unit's
# Restart=always then starts a fresh one once the old process has gone).
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: $0 BINARY CONFIG PIDFILE" >&2
    exit 2
fi
bin=$1
config=$2
pidfile=$3

say() { echo "tracebridge-upgrade: $*" >&2; }

old=${MAINPID:-}
if [ -z "$old" ] && [ -r "$pidfile" ]; then
    old=$(cat "$pidfile")
fi
case "$old" in
    '' | *[!0-9]*) say "no PID of a running tracebridge (\$MAINPID or $pidfile)"; exit 1 ;;
esac
if ! kill -0 "$old" 2>/dev/null; then
    say "process $old is not running"
    exit 1
fi

if ! "$bin" check --config "$config" >&2; then
    say "$bin rejects $config: nothing changed"
    exit 1
fi

# server.upgrade_sock from the config (a [server] key; a single-line string), else
# the default. Old and new process read the same file, so they agree on it.
sock=$(sed -n "s/^[[:space:]]*upgrade_sock[[:space:]]*=[[:space:]]*[\"']\\([^\"']*\\)[\"'].*/\\1/p" "$config" | head -n 1)
sock=${sock:-/tmp/tracebridge_upgrade.sock}
# The new process replaces it anyway; removing it first tells us when it listens.
rm -f "$sock"

"$bin" --config "$config" --upgrade &
new=$!

# pingora's new process waits about 5 s for the sockets; give it 4 s to start listening.
tries=0
while [ ! -S "$sock" ]; do
    if ! kill -0 "$new" 2>/dev/null; then
        say "the new process exited before listening on $sock: nothing changed"
        exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 80 ]; then
        say "the new process does not listen on $sock (is server.upgrade_sock in $config readable here?): nothing changed"
        kill -INT "$new" 2>/dev/null || true
        exit 1
    fi
    sleep 0.05
done

echo "$new" > "$pidfile.new"
mv -f "$pidfile.new" "$pidfile"
kill -QUIT "$old"

# The new process removes the socket once it holds the listeners.
tries=0
while [ -S "$sock" ]; do
    tries=$((tries + 1))
    if ! kill -0 "$new" 2>/dev/null || [ "$tries" -gt 200 ]; then
        say "the new process $new did not take the sockets over from $old"
        exit 1
    fi
    sleep 0.05
done
sleep 0.5
if ! kill -0 "$new" 2>/dev/null; then
    say "the new process $new exited after taking the sockets over"
    exit 1
fi
say "upgraded: $old -> $new ($old drains and exits)"
