//! The span pipeline against a real OTLP receiver: spans and resource arrive over
//! OTLP/HTTP and OTLP/gRPC; environment variables override the file; a collector that
//! is down, answers 500 or hangs costs no request; the queue stays bounded; degradation
//! switches on and off.

mod support;

use std::time::{Duration, Instant};

use support::{
    client, one_route, otlp_attr, poll_until, CollectorMode, Origin, OtlpReceiver, TestGateway,
};
use tracebridge::codec::Format;

fn config(origin: &Origin, endpoint: &str, extra: &str) -> String {
    one_route(
        origin.addr,
        2,
        &format!(
            r#"[telemetry]
            service_name = "edge-gateway"
            service_instance = "gw-1"
            exporter = "otlp"
            endpoint = "{endpoint}"
            batch_delay = "50ms"
            {extra}"#
        ),
        "",
    )
}

fn get(gw: &TestGateway, headers: &[(&str, &str)]) -> (u16, Duration, serde_json::Value) {
    let started = Instant::now();
    let mut req = client().get(gw.url("/"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let body = serde_json::from_str(&resp.text().unwrap()).unwrap_or_default();
    (status, started.elapsed(), body)
}

/// The gateway span of a `GET /` on route `main` as the receiver decoded it: the
/// resource of `config`, the continued trace and parent, the extracted format, the
/// status, and every attribute once, in order.
fn assert_gateway_span(
    (resource, span): &(
        opentelemetry_proto::tonic::resource::v1::Resource,
        opentelemetry_proto::tonic::trace::v1::Span,
    ),
    trace_id: &str,
    parent_id: &str,
    format: &str,
) {
    assert_eq!(
        otlp_attr(&resource.attributes, "service.name").as_deref(),
        Some("edge-gateway")
    );
    assert_eq!(
        otlp_attr(&resource.attributes, "service.instance.id").as_deref(),
        Some("gw-1")
    );
    assert_eq!(span.name, "GET main");
    assert_eq!(hex(&span.trace_id), trace_id);
    assert_eq!(hex(&span.parent_span_id), parent_id);
    assert_eq!(
        otlp_attr(&span.attributes, "tracebridge.extracted_format").as_deref(),
        Some(format)
    );
    assert_eq!(
        otlp_attr(&span.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    // Every attribute once, in the order the gateway sets them, through either
    // pipeline (OTLP/HTTP: tracebridge's encoder; gRPC: opentelemetry-otlp's).
    let keys: Vec<&str> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "http.request.method",
            "url.path",
            "url.scheme",
            "network.protocol.version",
            "http.route",
            "tracebridge.route",
            "tracebridge.upstream",
            "server.address",
            "server.port",
            "client.address",
            "tracebridge.extracted_format",
            "http.response.status_code",
            "tracebridge.injected_formats",
            "tracebridge.upstream.address",
        ]
    );
    for (key, value) in [
        ("http.request.method", "GET"),
        ("url.path", "/"),
        ("tracebridge.route", "main"),
        ("client.address", "127.0.0.1"),
    ] {
        assert_eq!(
            otlp_attr(&span.attributes, key).as_deref(),
            Some(value),
            "{key}"
        );
    }
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let injected = span
        .attributes
        .iter()
        .find(|kv| kv.key == "tracebridge.injected_formats")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::ArrayValue(array) => Some(
                array
                    .values
                    .iter()
                    .filter_map(|v| match v.value.as_ref()? {
                        Value::StringValue(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        });
    // The route's formats, and the incoming one kept for the service behind.
    let mut expected = vec!["tracecontext", "baggage"];
    if !expected.contains(&format) {
        expected.push(format);
    }
    assert_eq!(injected, Some(expected));
}

#[test]
fn spans_arrive_over_otlp_http_with_attributes_and_resource() {
    let origin = Origin::start("origin");
    let rx = OtlpReceiver::start(CollectorMode::Ok);
    let gw = TestGateway::start(&config(&origin, &format!("http://{}", rx.addr), ""));
    for _ in 0..5 {
        let (status, _, _) = get(
            &gw,
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        );
        assert_eq!(status, 200);
    }
    let spans = rx.wait_for(5);
    assert_eq!(spans.len(), 5);
    let (resource, _) = &spans[0];
    assert!(otlp_attr(&resource.attributes, "host.name").is_some());
    assert_eq!(
        otlp_attr(&resource.attributes, "service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_gateway_span(
        &spans[0],
        "80f198ee56343ba864fe8b2a57d3eff7",
        "e457b5a2e4d86bd1",
        "b3",
    );
    gw.metrics_containing(&["tracebridge_spans_exported_total 5"]);
}

#[test]
fn spans_arrive_over_otlp_grpc_with_attributes_and_resource() {
    spans_arrive_with("protocol = \"grpc\"", false);
}

#[test]
fn spans_arrive_over_otlp_grpc_gzip() {
    spans_arrive_with("protocol = \"grpc\"\ncompression = \"gzip\"", true);
}

#[test]
fn spans_arrive_over_otlp_http_gzip() {
    spans_arrive_with("compression = \"gzip\"", true);
}

/// Three traceparent requests through a gateway exporting with `telemetry` settings
/// and a configured header: three gateway spans arrive, with the header, compressed
/// or not as `gzip` says.
fn spans_arrive_with(telemetry: &str, gzip: bool) {
    let origin = Origin::start("origin");
    let rx = OtlpReceiver::start(CollectorMode::Ok);
    let telemetry = format!("{telemetry}\nheaders = {{ \"x-tenant\" = \"acme\" }}");
    let gw = TestGateway::start(&config(&origin, &format!("http://{}", rx.addr), &telemetry));
    for _ in 0..3 {
        let (status, _, _) = get(
            &gw,
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        );
        assert_eq!(status, 200);
    }
    let spans = rx.wait_for(3);
    assert_eq!(spans.len(), 3);
    assert!(rx.request_count() >= 1);
    let compressed = rx.compressed_count();
    assert_eq!(compressed > 0, gzip, "{compressed} compressed requests");
    assert_eq!(rx.last_tenant().as_deref(), Some("acme"));
    assert_gateway_span(
        &spans[0],
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "tracecontext",
    );
    gw.metrics_containing(&["tracebridge_spans_exported_total 3"]);
}

/// The load sink's mode (`benches/load_sink.rs`) counts the spans of a gzip batch
/// without decoding them, and still refuses a body that is not an export request.
#[test]
fn a_counting_receiver_counts_every_span_and_refuses_garbage() {
    let origin = Origin::start("origin");
    let rx = OtlpReceiver::start(CollectorMode::Count);
    let gw = TestGateway::start(&config(
        &origin,
        &format!("http://{}", rx.addr),
        "compression = \"gzip\"",
    ));
    for _ in 0..7 {
        assert_eq!(get(&gw, &[]).0, 200);
    }
    poll_until(Duration::from_secs(5), || match rx.span_count() {
        7 => Ok(()),
        n => Err(format!("{n} spans counted")),
    });
    assert!(rx.spans().is_empty(), "counting keeps no span");
    let garbage = client()
        .post(format!("http://{}/v1/traces", rx.addr))
        .header("content-type", "application/x-protobuf")
        .body(vec![0x0a, 0x05, 0x12])
        .send()
        .expect("receiver answers");
    assert_eq!(garbage.status().as_u16(), 400);
    assert_eq!(rx.span_count(), 7);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn environment_variables_override_the_file() {
    let origin = Origin::start("origin");
    let rx = OtlpReceiver::start(CollectorMode::Ok);
    let dead = support::DEAD_PORT;
    let port = support::free_port();
    let admin = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let text = config(&origin, &format!("http://127.0.0.1:{dead}"), "")
        .replace("{listen}", &format!("127.0.0.1:{port}"))
        .replace("{admin}", &format!("127.0.0.1:{admin}"));
    std::fs::write(&path, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tracebridge"))
        .arg("--config")
        .arg(&path)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", rx.addr))
        .env("OTEL_SERVICE_NAME", "from-env")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("http://127.0.0.1:{port}/");
    while client().get(&url).send().is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let spans = rx.wait_for(1);
    let _ = child.kill();
    let _ = child.wait();
    let resource = &spans[0].0;
    assert_eq!(
        otlp_attr(&resource.attributes, "service.name").as_deref(),
        Some("from-env")
    );
    assert_eq!(
        otlp_attr(&resource.attributes, "deployment.environment").as_deref(),
        Some("test")
    );
}

/// Requests keep succeeding fast whatever the collector does; what cannot be
/// exported is dropped and counted, and the queue never grows past its size.
fn collector_trouble(mode: Option<CollectorMode>) {
    let origin = Origin::start("origin");
    let rx = mode.map(OtlpReceiver::start);
    let endpoint = match &rx {
        Some(rx) => format!("http://{}", rx.addr),
        None => format!("http://127.0.0.1:{}", support::DEAD_PORT),
    };
    let gw = TestGateway::start(&config(
        &origin,
        &endpoint,
        "queue_size = 16\nbatch_size = 4\ntimeout = \"300ms\"",
    ));
    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let (status, took, _) = get(&gw, &[]);
        assert_eq!(status, 200, "request {i}");
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest request {slowest:?}"
    );
    let metrics = gw.metrics_containing(&["tracebridge_spans_dropped_total"]);
    let dropped: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("tracebridge_spans_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let depth: u64 = metrics
        .lines()
        .find(|l| l.starts_with("tracebridge_span_queue_depth "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(depth <= 16, "queue bounded: {depth}");
    assert!(
        dropped > 0,
        "spans that could not be exported are counted:\n{metrics}"
    );
}

#[test]
fn a_dead_collector_costs_no_request() {
    collector_trouble(None);
}

#[test]
fn a_failing_collector_costs_no_request() {
    collector_trouble(Some(CollectorMode::Fail));
}

#[test]
fn a_hanging_collector_costs_no_request() {
    collector_trouble(Some(CollectorMode::Hang));
}

#[test]
fn degradation_switches_to_propagation_only_and_back() {
    let origin = Origin::start("origin");
    let rx = OtlpReceiver::start(CollectorMode::Hang);
    let gw = TestGateway::start(&config(
        &origin,
        &format!("http://{}", rx.addr),
        "queue_size = 8\nbatch_size = 2\ntimeout = \"2s\"\ndegrade_high_water = 0.5\n\
         degrade_low_water = 0.2\ndegrade_after = \"200ms\"",
    ));
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // Fill the queue while the collector hangs.
    poll_until(Duration::from_secs(10), || {
        get(&gw, &[("traceparent", tp)]);
        degraded_is(&gw, 1)
    });
    // Degraded: no new span, the context still goes out with the incoming parent.
    let (status, _, body) = get(&gw, &[("traceparent", tp)]);
    assert_eq!(status, 200);
    let mut h = http::HeaderMap::new();
    for (k, v) in body["headers"].as_object().unwrap() {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.as_str().unwrap().parse().unwrap(),
        );
    }
    let out = Format::TraceContext.extract(&h).unwrap().unwrap();
    assert_eq!(
        out.trace_id.unwrap().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        out.parent_id.unwrap().to_string(),
        "00f067aa0ba902b7",
        "incoming parent passes"
    );
    // The collector comes back: the queue drains and the gateway recovers by itself.
    rx.set_mode(CollectorMode::Ok);
    poll_until(Duration::from_secs(20), || degraded_is(&gw, 0));
    let before = rx.spans().len();
    get(&gw, &[("traceparent", tp)]);
    rx.wait_for(before + 1);
}

/// `Ok` when the `tracebridge_degraded` gauge reads `value`, else the metrics page.
fn degraded_is(gw: &TestGateway, value: u8) -> Result<(), String> {
    let m = client()
        .get(gw.admin_url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    let line = format!("tracebridge_degraded {value}");
    if m.lines().any(|l| l == line) {
        Ok(())
    } else {
        Err(format!("tracebridge_degraded never became {value}:\n{m}"))
    }
}
