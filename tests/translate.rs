//! `tracebridge translate` through the real binary: input from `-H` and stdin, `--from` /
//! `--to` lists and aliases, the `--json` shape, exit codes and messages.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tracebridge::codec::Format;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Runs `translate` with `args`, feeding `stdin` when given (else stdin is empty).
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracebridge"))
        .arg("translate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracebridge");
    let mut pipe = child.stdin.take().expect("stdin");
    // With -H the binary never reads stdin and may have exited already: a closed pipe
    // is then the expected outcome of the write, not a failure.
    match pipe.write_all(stdin.unwrap_or("").as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
        _ => {}
    }
    drop(pipe);
    child.wait_with_output().expect("wait")
}

/// `-H` for each header line.
fn with_headers<'a>(headers: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = Vec::new();
    for h in headers {
        args.extend(["-H", h]);
    }
    args.extend(rest);
    args
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// Exit 0 and the stdout.
fn ok(o: Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    stdout(&o)
}

fn json(o: Output) -> Value {
    serde_json::from_str(&ok(o)).expect("valid JSON")
}

#[test]
fn repeated_h_flags_translate_in_to_order() {
    let out = ok(run(
        &with_headers(
            &[
                TRACEPARENT,
                "tracestate: congo=t61rcWkgMzE",
                "baggage: k1=v1",
            ],
            &["--to", "b3,tracecontext,baggage"],
        ),
        None,
    ));
    // --to order, the caller's span id kept as the parent, tracestate forwarded.
    assert_eq!(
        out,
        format!(
            "b3: {TRACE}-{SPAN}-1\n\
             traceparent: 00-{TRACE}-{SPAN}-01\n\
             tracestate: congo=t61rcWkgMzE\n\
             baggage: k1=v1\n"
        )
    );
}

#[test]
fn stdin_lines_with_comments_blank_lines_and_crlf() {
    let input = format!(
        "# captured from the load balancer\r\n\
         \r\n\
         X-B3-TraceId: {TRACE}\r\n\
         X-B3-SpanId: {SPAN}\r\n\
         \n\
         X-B3-Sampled: 1\r\n"
    );
    let out = ok(run(&["--to", "w3c"], Some(&input)));
    assert_eq!(out, format!("traceparent: 00-{TRACE}-{SPAN}-01\n"));
}

#[test]
fn h_flags_win_over_stdin() {
    let out = ok(run(
        &with_headers(&[TRACEPARENT], &["--to", "b3"]),
        Some("b3: 0\n"),
    ));
    assert_eq!(out, format!("b3: {TRACE}-{SPAN}-1\n"));
}

#[test]
fn from_list_sets_the_precedence() {
    let other = "b3: 11111111111111111111111111111111-2222222222222222-0";
    let headers = [TRACEPARENT, other];
    // Default precedence: tracecontext before b3; the b3 trace becomes a link.
    let v = json(run(
        &with_headers(&headers, &["--json", "--to", "b3"]),
        None,
    ));
    assert_eq!(v["extracted"]["format"], "tracecontext");
    assert_eq!(v["extracted"]["links"][0]["format"], "b3");
    assert_eq!(
        v["extracted"]["links"][0]["trace_id"],
        "11111111111111111111111111111111"
    );
    assert_eq!(v["headers"]["b3"], format!("{TRACE}-{SPAN}-1"));
    // --from b3,w3c: b3 wins and the W3C trace is the link.
    let v = json(run(
        &with_headers(&headers, &["--json", "--from", "b3,w3c", "--to", "w3c"]),
        None,
    ));
    assert_eq!(v["extracted"]["format"], "b3");
    assert_eq!(v["extracted"]["links"][0]["format"], "tracecontext");
    assert_eq!(
        v["headers"]["traceparent"],
        "00-11111111111111111111111111111111-2222222222222222-00"
    );
    // --from b3 alone does not even look at traceparent.
    let v = json(run(
        &with_headers(&headers, &["--json", "--from", "b3", "--to", "b3"]),
        None,
    ));
    assert_eq!(v["extracted"]["format"], "b3");
    assert!(v["extracted"].get("links").is_none(), "{v}");
}

#[test]
fn to_all_writes_every_format() {
    let out = ok(run(
        &with_headers(&[TRACEPARENT, "baggage: k=v"], &["--to", "all"]),
        None,
    ));
    let names: Vec<&str> = out
        .lines()
        .map(|l| l.split_once(": ").expect("name: value").0)
        .collect();
    for f in Format::ALL {
        let owned = |n: &&str| {
            f.headers().iter().any(|h| h.as_str() == *n)
                || f.prefixes().iter().any(|p| n.starts_with(p))
        };
        assert!(names.iter().any(owned), "{f} missing from {names:?}");
    }
    // Every line is one of the formats' own headers.
    for n in &names {
        let known = Format::ALL.iter().any(|f| {
            f.headers().iter().any(|h| h.as_str() == *n)
                || f.prefixes().iter().any(|p| n.starts_with(p))
        });
        assert!(known, "{n}");
    }
    // --to all is --to with every id listed.
    let listed: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
    let explicit = ok(run(
        &with_headers(&[TRACEPARENT, "baggage: k=v"], &["--to", &listed.join(",")]),
        None,
    ));
    assert_eq!(out, explicit);
}

#[test]
fn aliases_mean_their_format() {
    let pairs = [
        ("w3c", "tracecontext"),
        ("W3C", "tracecontext"),
        ("b3-multi", "b3multi"),
        ("b3-single", "b3"),
        ("aws", "xray"),
        ("ot", "ottrace"),
        ("cloudtrace", "gcp"),
        ("sw8", "skywalking"),
        ("opencensus", "grpc-trace-bin"),
    ];
    for (alias, id) in pairs {
        let to_alias = ok(run(&with_headers(&[TRACEPARENT], &["--to", alias]), None));
        let to_id = ok(run(&with_headers(&[TRACEPARENT], &["--to", id]), None));
        assert!(!to_id.is_empty(), "{id}");
        assert_eq!(to_alias, to_id, "--to {alias}");
    }
    // And on the reading side.
    let v = json(run(
        &with_headers(
            &[
                &format!("x-b3-traceid: {TRACE}"),
                &format!("x-b3-spanid: {SPAN}"),
            ],
            &["--json", "--from", "b3-multi", "--to", "aws"],
        ),
        None,
    ));
    assert_eq!(v["extracted"]["format"], "b3multi");
    assert_eq!(
        v["headers"]["x-amzn-trace-id"],
        "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=?"
    );
}

#[test]
fn json_shape() {
    let v = json(run(
        &with_headers(
            &[
                &format!("b3: {TRACE}-{SPAN}-d"),
                "baggage: user=alice,tenant=acme%20corp",
            ],
            &["--json", "--to", "b3multi,baggage"],
        ),
        None,
    ));
    let e = &v["extracted"];
    assert_eq!(e["format"], "b3");
    assert_eq!(e["trace_id"], TRACE);
    assert_eq!(e["span_id"], SPAN);
    assert_eq!(e["sampled"], true);
    assert_eq!(e["debug"], true);
    assert_eq!(
        e["baggage"],
        serde_json::json!({"user": "alice", "tenant": "acme corp"})
    );
    assert_eq!(
        v["headers"],
        serde_json::json!({
            "x-b3-traceid": TRACE,
            "x-b3-spanid": SPAN,
            "x-b3-flags": "1",
            "baggage": "user=alice,tenant=acme%20corp",
        })
    );
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["extracted", "headers"]);

    // A deferred decision is `null`; a context without parent has `span_id: null`.
    let v = json(run(
        &with_headers(
            &["X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793"],
            &["--json", "--to", "xray"],
        ),
        None,
    ));
    assert_eq!(v["extracted"]["format"], "xray");
    assert_eq!(
        v["extracted"]["trace_id"],
        "5759e988bd862e3fe1be46a994272793"
    );
    assert_eq!(v["extracted"]["span_id"], Value::Null);
    assert_eq!(v["extracted"]["sampled"], Value::Null);
    assert_eq!(v["extracted"]["baggage"], serde_json::json!({}));
}

/// No span is made: every format's output names the incoming caller span as its parent.
#[test]
fn incoming_parent_id_is_kept() {
    let inputs: [&[&str]; 5] = [
        &[TRACEPARENT],
        &[&format!("b3: {TRACE}-{SPAN}-1")],
        &[&format!("uber-trace-id: {TRACE}:{SPAN}:0:1")],
        // Datadog: decimal ids, the high half in _dd.p.tid.
        &[
            "x-datadog-trace-id: 11803532876627986230",
            "x-datadog-parent-id: 67667974448284343",
            "x-datadog-sampling-priority: 1",
            "x-datadog-tags: _dd.p.tid=4bf92f3577b34da6",
        ],
        &[&format!(
            "x-cloud-trace-context: {TRACE}/67667974448284343;o=1"
        )],
    ];
    for input in inputs {
        let v = json(run(&with_headers(input, &["--json"]), None));
        assert_eq!(v["extracted"]["span_id"], SPAN, "{input:?}");
        let h = &v["headers"];
        assert_eq!(
            h["traceparent"],
            format!("00-{TRACE}-{SPAN}-01"),
            "{input:?}"
        );
        assert_eq!(h["b3"], format!("{TRACE}-{SPAN}-1"), "{input:?}");
        assert_eq!(h["x-b3-spanid"], SPAN, "{input:?}");
        assert_eq!(h["x-datadog-parent-id"], "67667974448284343", "{input:?}");
        assert_eq!(h["eagleeye-spanid"], "67667974448284343", "{input:?}");
        assert_eq!(h["x-instana-s"], SPAN, "{input:?}");
        assert_eq!(
            h["x-cloud-trace-context"],
            format!("{TRACE}/67667974448284343;o=1"),
            "{input:?}"
        );
    }
}

/// An X-Ray `Root=` alone has no parent: the low 64 bits of the trace id stand in, so
/// the output is deterministic.
#[test]
fn trace_without_parent_uses_the_low_trace_bits() {
    let args = with_headers(
        &["x-amzn-trace-id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"],
        &["--to", "w3c"],
    );
    let first = ok(run(&args, None));
    assert_eq!(
        first,
        "traceparent: 00-5759e988bd862e3fe1be46a994272793-e1be46a994272793-01\n"
    );
    assert_eq!(ok(run(&args, None)), first);
}

/// Only a decision and baggage: no format can write ids, the baggage formats write the
/// baggage, and it is still a success.
#[test]
fn decision_only_writes_baggage_alone() {
    let out = ok(run(
        &with_headers(&["b3: 1", "baggage: k=v"], &["--to", "all"]),
        None,
    ));
    // Jaeger and OpenTracing carry baggage without a trace; SkyWalking and EagleEye
    // need a trace id for theirs.
    assert_eq!(out, "uberctx-k: v\not-baggage-k: v\nbaggage: k=v\n");
}

#[test]
fn invalid_headers_exit_1_with_format_and_reason() {
    let o = run(
        &with_headers(
            &["traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],
            &[],
        ),
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(err.contains("tracecontext"), "{err}");
    assert!(err.contains("invalid trace id (trace_id)"), "{err}");

    // Every invalid format is listed, each once (regression: `--from b3,all` used to
    // extract and report b3 twice).
    let o = run(
        &with_headers(
            &["b3: nonsense", "x-datadog-trace-id: -1"],
            &["--from", "b3,all"],
        ),
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(
        err,
        "error: invalid trace context: b3: malformed value (malformed); \
         datadog: invalid trace id (trace_id)\n"
    );
}

#[test]
fn valid_context_wins_over_invalid_headers() {
    let out = ok(run(
        &with_headers(&["b3: nonsense", TRACEPARENT], &["--to", "b3"]),
        None,
    ));
    assert_eq!(out, format!("b3: {TRACE}-{SPAN}-1\n"));
}

#[test]
fn no_context_exits_2() {
    for (args, stdin) in [
        (with_headers(&["accept: */*"], &[]), None),
        (vec![], Some("")),
        (vec![], Some("# nothing here\n\n")),
        // Present, but not among the --from formats.
        (with_headers(&[TRACEPARENT], &["--from", "b3,jaeger"]), None),
        // tracestate without traceparent is not a context (w3c-060).
        (with_headers(&["tracestate: a=b"], &[]), None),
    ] {
        let o = run(&args, stdin);
        assert_eq!(o.status.code(), Some(2), "{args:?} {stdin:?}");
        assert!(o.stdout.is_empty());
        assert_eq!(stderr(&o), "no trace context found\n");
    }
}

#[test]
fn unknown_format_exits_1() {
    for flag in ["--from", "--to"] {
        let o = run(&with_headers(&[TRACEPARENT], &[flag, "w3c,zipkin"]), None);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        assert_eq!(stderr(&o), "error: unknown format \"zipkin\"\n", "{flag}");
        assert!(o.stdout.is_empty());
        let o = run(&with_headers(&[TRACEPARENT], &[flag, " , "]), None);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        assert_eq!(stderr(&o), "error: empty format list\n", "{flag}");
    }
}

#[test]
fn malformed_lines_exit_1_with_their_number() {
    // -H arguments are numbered from 1.
    let o = run(&with_headers(&[TRACEPARENT, "no colon here"], &[]), None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: line 2: expected `name: value`, got \"no colon here\"\n"
    );
    // Stdin lines are numbered as read, comments and blank lines included.
    let o = run(
        &[],
        Some(&format!("# comment\n\n{TRACEPARENT}\nbad name: x\n")),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: line 4: invalid header name \"bad name\"\n"
    );
    // A control character cannot be a header value.
    let o = run(&with_headers(&["baggage: a=\u{1}"], &[]), None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: line 1: invalid header value for baggage\n"
    );
    assert!(o.stdout.is_empty());
}

/// Regression: with a key repeated in the baggage (`uberctx-k` and `jaeger-baggage: k=`),
/// `extracted.baggage` showed the last value, while every one-value-per-key format sends
/// the first.
#[test]
fn json_baggage_shows_the_value_that_is_sent() {
    let v = json(run(
        &with_headers(
            &[
                &format!("uber-trace-id: {TRACE}:{SPAN}:0:1"),
                "uberctx-k: first",
                "jaeger-baggage: k=second",
            ],
            &["--json", "--to", "jaeger,baggage"],
        ),
        None,
    ));
    assert_eq!(v["extracted"]["baggage"], serde_json::json!({"k": "first"}));
    assert_eq!(v["headers"]["uberctx-k"], "first");
    assert_eq!(v["headers"]["baggage"], "k=first,k=second");
}
