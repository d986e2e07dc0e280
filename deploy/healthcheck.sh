#!/bin/bash
# Container health check: GET /healthz on the admin listener, healthy on HTTP 200.
#
# The runtime image has no curl or wget; bash opens the TCP connection itself
# (/dev/tcp). Address: $TRACEBRIDGE_HEALTHCHECK_ADDR (host:port), default
# 127.0.0.1:9901 (deploy/tracebridge.toml's `admin_listen`); the path is the first
# argument, default /healthz (use /readyz to check readiness instead).
set -u
addr="${TRACEBRIDGE_HEALTHCHECK_ADDR:-127.0.0.1:9901}"
path="${1:-/healthz}"
host="${addr%:*}"
port="${addr##*:}"
exec 3<>"/dev/tcp/${host}/${port}" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$addr" >&3
IFS= read -r -t 2 status <&3 || exit 1
exec 3<&-
status="${status%$'\r'}"
read -r _version code _ <<<"$status"
[ "${code:-}" = 200 ] && exit 0
echo "unhealthy: $path answered: ${status:-nothing}" >&2
exit 1
