#!/usr/bin/env bash
# The import graph runs one way (STYLE.md §1):
#   model → codec → mediate → config → telemetry → reload → proxy / admin / translate → server / cli → main
# 1. No module imports one to its right (modules of one rank do not import each other).
# 2. Inside a module, the files import each other without a cycle (tsort finds one).
set -euo pipefail
cd "$(dirname "$0")/.."

grep -rnoE 'crate::(\{|[a-z_]+)' src | awk -F: '
  BEGIN {
    n = split("model codec mediate config telemetry reload proxy server main lib", order, " ")
    for (i = 1; i <= n; i++) rank[order[i]] = i
    rank["admin"] = rank["translate"] = rank["proxy"]
    rank["cli"] = rank["server"]
  }
  {
    from = $1; sub(/^src\//, "", from); sub(/[\/.].*/, "", from)
    to = $NF
    if (!(from in rank)) { print "unranked module: " from " (add it to .ci/imports.sh)"; bad = 1; next }
    if (from != to && !(rank[to] > 0 && rank[from] > rank[to])) {
      print "import runs back up: " $1 ":" $2 ": " from " -> " to; bad = 1
    }
  }
  END { exit bad }'

for f in src/*/*.rs; do
  m=$(basename "$(dirname "$f")"); b=$(basename "$f" .rs)
  { grep -vE '^\s*//' "$f" | grep -oE "(crate::$m::|super::)[a-z_]+" || true; } | sed -E 's/.*:://' | sort -u |
    while read -r g; do
      if [ "$g" != "$b" ] && [ -f "src/$m/$g.rs" ]; then echo "$m/$b $m/$g"; fi
    done
done | tsort >/dev/null
