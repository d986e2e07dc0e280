"""The report of the whole-proxy load benchmark (called by benches/load/run.sh).

    python3 report.py RUNS_TSV CONNS1000_TSV OUT_MD key=value...

Reads the per-run rows run.sh wrote, prints a Markdown report (medians over the
rounds of the runs that did not fail) and writes it to OUT_MD.
"""

import csv
import random
import statistics
import sys

runs_path, c1000_path, out_path = sys.argv[1:4]
meta = dict(a.split("=", 1) for a in sys.argv[4:])

# Scenarios without an nginx row of their own are compared with nginx on the same request.
SAME_REQUEST = {"b3-3-otlp": "b3-3", "caddy-tracing": "b3-3"}
SCENARIOS = ["plain", "tp", "b3-3", "b3-3-otlp", "caddy-tracing"]
CONTESTANTS = ["tracebridge", "nginx", "nginx-fwd", "haproxy", "caddy"]


def load(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            req = int(r["requests"])
            secs = float(r["seconds"])
            cpu_s = int(r["cpu_ticks"]) / int(r["clk_tck"])
            r["rps"] = float(r["rps"])
            r["p50"] = float(r["p50_us"])
            r["p99"] = float(r["p99_us"])
            r["cpu_us"] = cpu_s * 1e6 / req if req else float("nan")
            r["util"] = 100 * cpu_s / secs if secs else float("nan")
            r["rss"] = int(r["peak_rss_kb"]) / 1024
            r["req"] = req
            r["spans"] = int(r["spans"])
            r["ok"] = r["status"] == "ok"
            rows.append(r)
    return rows


def med(rows, field):
    vals = [r[field] for r in rows if r["ok"]]
    return statistics.median(vals) if vals else None


def lat(us):
    if us is None:
        return "–"
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


def num(v, fmt):
    return "–" if v is None else format(v, fmt)


def pairs(a_rows, b_rows, field):
    """Per-round ratios a/b of `field` over the rounds where both runs succeeded, their
    median, and how far that median can move on this machine: a bootstrap over the
    rounds (the pairs resampled with replacement, 10,000 times, fixed seed so a report
    can be recomputed), its 5th and 95th percentiles as text. Meaningful from about 10
    rounds. The runs of a pair are back to back (run.sh's plan), so the median of the
    pairs is the figure least moved by the drift of a shared machine between rounds."""
    by_round = {r["round"]: r for r in b_rows if r["ok"]}
    per_round = [
        r[field] / by_round[r["round"]][field]
        for r in a_rows
        if r["ok"] and r["round"] in by_round
    ]
    median = statistics.median(per_round) if per_round else None
    interval = "–"
    if len(per_round) >= 2:
        rng = random.Random(1)
        medians = sorted(
            statistics.median(rng.choices(per_round, k=len(per_round))) for _ in range(10_000)
        )
        interval = f"{medians[500]:.3f}–{medians[9_499]:.3f}"
    return per_round, median, interval


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "–"


runs = load(runs_path)
c1000 = load(c1000_path)
groups = {}
for r in runs:
    groups.setdefault((r["scenario"], r["contestant"]), []).append(r)

out = []
w = out.append
w(f"# tracebridge whole-proxy load benchmark ({meta['started']})")
w("")
w(f"- Machine: {meta['ncpu']} CPUs ({meta['cpu_model']}), Linux {meta['kernel']}; "
  f"load average before the start {meta['load_before']}, after the end {meta['load_after']}.")
w(f"- Contestants: tracebridge {meta['commit']}, {meta['versions']}; one worker thread "
  "each, keep-alive to the origin, no access log. Origin: "
  + ("benches/load_origin.rs, one thread, `200 ok` (a cost that does not depend on the request's headers)."
     if meta["origin"] == "rust" else "nginx, one worker, `return 200`."))
pin = ("contestant on CPU 1; origin, wrk and the OTLP sink on CPU 0"
       if meta["pin"] == "on" else "none")
w(f"- Method: `wrk -t1 -c50 -d{meta['duration']}s --latency`, {meta['rounds']} interleaved "
  f"round(s), median over the rounds of the runs that did not fail. Pinning: {pin}. "
  "CPU = utime+stime of the contestant's processes during the run, per request and as a "
  "share of one core (utilisation); RSS = the run's peak (VmHWM) summed over its processes.")
w("- A CPU utilisation well below 100 % means that the contestant was not the bottleneck "
  "during the run: the load side, or another process on the machine, held it back.")
w("")
w("| scenario | contestant | req/s | p50 | p99 | CPU µs/req | CPU util | peak RSS | "
  "req/s ÷ nginx (same) | req/s ÷ nginx plain | runs ok |")
w("|---|---|---|---|---|---|---|---|---|---|---|")
nginx_plain = med(groups.get(("plain", "nginx"), []), "rps")
for s in SCENARIOS:
    for c in CONTESTANTS:
        rows = groups.get((s, c))
        if not rows:
            continue
        rps = med(rows, "rps")
        ref = med(groups.get((SAME_REQUEST.get(s, s), "nginx"), []), "rps")
        same = ratio(rps, ref)
        if s in SAME_REQUEST and same != "–":
            same += f" (b3-3)"
        ok = sum(r["ok"] for r in rows)
        w(f"| {s} | {c} | {num(rps, ',.0f')} | {lat(med(rows, 'p50'))} | {lat(med(rows, 'p99'))} "
          f"| {num(med(rows, 'cpu_us'), '.1f')} | {num(med(rows, 'util'), '.0f')} % "
          f"| {num(med(rows, 'rss'), '.1f')} MiB | {same} | {ratio(rps, nginx_plain)} "
          f"| {ok}/{len(rows)} |")
w("")
fwd = groups.get(("plain", "nginx-fwd"))
if fwd:
    tb_plain = groups.get(("plain", "tracebridge"), [])
    w("**The same job** (`plain`; nginx-fwd is nginx sending the origin the headers "
      "tracebridge adds by default: X-Forwarded-*, Forwarded, a traceparent): tracebridge "
      f"÷ nginx-fwd req/s **{ratio(med(tb_plain, 'rps'), med(fwd, 'rps'))}**, CPU per request "
      f"{num(med(tb_plain, 'cpu_us'), '.1f')} vs {num(med(fwd, 'cpu_us'), '.1f')} µs.")
    w("")

# tracebridge against nginx round by round: in plain and b3-3 the two run back to back.
side = []
for s in ("plain", "b3-3"):
    tb_rows, ng_rows = groups.get((s, "tracebridge"), []), groups.get((s, "nginx"), [])
    if tb_rows and ng_rows:
        cells = []
        for field, label in (("rps", "req/s"), ("cpu_us", "CPU per request"), ("p99", "p99")):
            _, m, interval = pairs(tb_rows, ng_rows, field)
            cells.append(f"{label} {num(m, '.3f')} ({interval})")
        side.append(f"- `{s}`: " + ", ".join(cells))
if side:
    w("**Side by side with nginx** (tracebridge ÷ nginx, median of the per-round pairs, "
      "90 % bootstrap interval; the two runs of a round are back to back):")
    w("")
    out.extend(side)
    w("")

# OTLP overhead, from the same rounds.
tb_none = groups.get(("b3-3", "tracebridge"), [])
tb_otlp = groups.get(("b3-3-otlp", "tracebridge"), [])
caddy_tr = groups.get(("caddy-tracing", "caddy"), [])
m_none, m_otlp = med(tb_none, "rps"), med(tb_otlp, "rps")
if m_none and m_otlp:
    per_round, paired, interval = pairs(tb_otlp, tb_none, "rps")
    verdict = "met" if m_otlp / m_none >= 0.95 else "NOT met"
    c_none, c_otlp = med(tb_none, "cpu_us"), med(tb_otlp, "cpu_us")
    w(f"**OTLP overhead** (tracebridge b3-3-otlp ÷ b3-3 req/s, medians of the same rounds): "
      f"**{m_otlp / m_none:.3f}**; median of the per-round pairs "
      f"{num(paired, '.3f')}, 90 % bootstrap interval {interval} "
      f"(per round: {', '.join(f'{x:.3f}' for x in per_round) or '–'}); "
      f"target ≥ 0.95: {verdict}. In CPU per request: {c_otlp:.1f} µs with export, "
      f"{c_none:.1f} µs without (ratio {c_none / c_otlp:.3f}); the exporter thread runs in "
      "the same process, on the same CPU.")
    w("")
m_caddy = med(caddy_tr, "rps")
if m_otlp and m_caddy:
    w(f"**Tracing gateways** (tracebridge b3-3-otlp ÷ Caddy with `tracing`, req/s): "
      f"**{m_otlp / m_caddy:.2f}×**.")
    w("")
for name, rows in (("tracebridge b3-3-otlp", tb_otlp), ("Caddy tracing", caddy_tr)):
    if rows:
        spans = sum(r["spans"] for r in rows)
        req = sum(r["req"] for r in rows)
        w(f"- Spans at the sink, {name}: {spans:,} for {req:,} requests "
          f"({100 * spans / req if req else 0:.1f} %).")
    if rows is tb_otlp:
        for r in rows:
            w(f"  - round {r['round']}: {r['spans']:,} spans for {r['req']:,} requests; "
              f"tracebridge's span pipeline during the run: {r['notes']}.")
if meta.get("caddy_tracing_missing"):
    w(f"- Scenario caddy-tracing not measured: {meta['caddy_tracing_missing']}.")
for check in filter(None, meta.get("span_checks", "").split(";")):
    w(f"- Before measuring: {check}.")
w("")

failed = [r for r in runs + c1000 if not r["ok"]]
if failed:
    w("**Failed runs** (left out of the medians):")
    w("")
    for r in failed:
        w(f"- round {r['round']}, {r['scenario']}, {r['server']}: {r['status']} "
          f"({r['rps']:,.0f} req/s)")
    w("")
else:
    w("No run had a non-2xx answer or a socket error.")
    w("")

if c1000:
    w(f"**1000 connections** (`wrk -t2 -c1000 -d{meta['duration']}s`, scenario plain, one run):")
    w("")
    w("| contestant | req/s | p50 | p99 | CPU µs/req | peak RSS | status |")
    w("|---|---|---|---|---|---|---|")
    for r in c1000:
        w(f"| {r['contestant']} | {r['rps']:,.0f} | {lat(r['p50'])} | {lat(r['p99'])} "
          f"| {r['cpu_us']:.1f} | {r['rss']:.1f} MiB | {r['status']} |")
    tb = [r for r in c1000 if r["contestant"] == "tracebridge"]
    if tb:
        verdict = "met" if tb[0]["rss"] <= 64 else "NOT met"
        w("")
        w(f"tracebridge peak RSS with 1000 connections: {tb[0]['rss']:.1f} MiB; target ≤ 64 MiB: "
          f"{verdict}.")
    w("")

text = "\n".join(out)
print(text)
with open(out_path, "w") as f:
    f.write(text)
