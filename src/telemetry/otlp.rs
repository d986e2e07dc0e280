//! OTLP exporter settings: the config file, overridden by the standard OpenTelemetry
//! environment variables the way the SDKs apply them (environment over file).
//!
//! | variable | overrides |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full traces URL (used as is) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | the base URL (`/v1/traces` appended for HTTP) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` (and `_TRACES_PROTOCOL`) | `http/protobuf` or `grpc` |
//! | `OTEL_EXPORTER_OTLP_HEADERS` (and `_TRACES_HEADERS`) | `k1=v1,k2=v2`, values percent-decoded |
//! | `OTEL_SERVICE_NAME` | `service.name` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | extra resource attributes `k1=v1,k2=v2` |

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::spec::{Compression, OtlpFileSettings, OtlpProtocol};
use crate::model::Named;

/// Everything the OTLP exporter is built from, after environment overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// Transport.
    pub protocol: OtlpProtocol,
    /// The traces URL: for HTTP the full `…/v1/traces` URL, for gRPC the server URL.
    pub endpoint: String,
    /// Extra request headers (authentication, tenant).
    pub headers: BTreeMap<String, String>,
    /// Per-export timeout.
    pub timeout: Duration,
    /// Payload compression.
    pub compression: Compression,
}

fn traces_url(base: &str, protocol: OtlpProtocol) -> String {
    let base = base.trim_end_matches('/');
    match protocol {
        OtlpProtocol::HttpProtobuf => format!("{base}/v1/traces"),
        OtlpProtocol::Grpc => base.to_string(),
    }
}

fn default_base(protocol: OtlpProtocol) -> &'static str {
    match protocol {
        OtlpProtocol::HttpProtobuf => "http://localhost:4318",
        OtlpProtocol::Grpc => "http://localhost:4317",
    }
}

/// Parses a `k1=v1,k2=v2` list (the OTel environment format), percent-decoding values
/// and skipping malformed items.
pub(crate) fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|item| {
            let (k, v) = item.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| {
                (
                    k.to_string(),
                    percent_encoding::percent_decode_str(v.trim())
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
        })
        .collect()
}

/// Applies the environment (`env` looks a variable up) over the file's settings.
pub(crate) fn resolve(
    file: &OtlpFileSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> OtlpSettings {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .and_then(|p| OtlpProtocol::from_name(p.trim()))
        .unwrap_or(file.protocol);
    let endpoint = if let Some(full) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        full
    } else if let Some(base) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        traces_url(&base, protocol)
    } else if file.endpoint.is_empty() {
        traces_url(default_base(protocol), protocol)
    } else {
        traces_url(&file.endpoint, protocol)
    };
    let mut headers = file.headers.clone();
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(list) = var(name) {
            headers.extend(parse_pairs(&list));
        }
    }
    OtlpSettings {
        protocol,
        endpoint,
        headers,
        timeout: file.timeout,
        compression: file.compression,
    }
}

/// Builds the gRPC exporter (OTLP/HTTP is [`super::otlp_http`]). Call it inside a
/// tokio runtime: tonic needs one to build its channel. `None` after logging why.
pub(crate) fn build_grpc_exporter(s: &OtlpSettings) -> Option<opentelemetry_otlp::SpanExporter> {
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (k, v) in &s.headers {
        if let (Ok(k), Ok(v)) = (
            k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse(),
        ) {
            metadata.insert(k, v);
        }
    }
    let mut b = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(s.endpoint.clone())
        .with_timeout(s.timeout)
        .with_metadata(metadata);
    if s.compression == Compression::Gzip {
        b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    match b.build() {
        Ok(e) => Some(e),
        Err(e) => {
            log::error!(
                "cannot build the OTLP/gRPC exporter for {}: {e}",
                s.endpoint
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> OtlpFileSettings {
        OtlpFileSettings {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: "http://collector:4318/".into(),
            headers: BTreeMap::from([("x-tenant".into(), "a".into())]),
            timeout: Duration::from_secs(5),
            compression: Compression::None,
        }
    }

    #[test]
    fn file_values_without_environment() {
        let s = resolve(&file(), &|_| None);
        assert_eq!(s.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(s.headers["x-tenant"], "a");
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://otel:4317".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_EXPORTER_OTLP_HEADERS" => {
                Some("authorization=Bearer%20abc, x-tenant=b".to_string())
            }
            _ => None,
        };
        let s = resolve(&file(), &env);
        assert_eq!(s.protocol, OtlpProtocol::Grpc);
        assert_eq!(s.endpoint, "http://otel:4317");
        assert_eq!(s.headers["authorization"], "Bearer abc");
        assert_eq!(s.headers["x-tenant"], "b");
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is() {
        let env = |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://x:9/custom".to_string())
        };
        assert_eq!(resolve(&file(), &env).endpoint, "http://x:9/custom");
    }

    #[test]
    fn defaults_per_protocol() {
        let mut f = file();
        f.endpoint.clear();
        assert_eq!(
            resolve(&f, &|_| None).endpoint,
            "http://localhost:4318/v1/traces"
        );
        f.protocol = OtlpProtocol::Grpc;
        assert_eq!(resolve(&f, &|_| None).endpoint, "http://localhost:4317");
    }
}

/// The gateway's identity after `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
/// (environment over file; `OTEL_SERVICE_NAME` over a `service.name` in the attributes).
pub(crate) fn identity(
    service_name: &str,
    service_instance: &str,
    host_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> crate::telemetry::tracer::Identity {
    let mut extra = env("OTEL_RESOURCE_ATTRIBUTES")
        .map(|s| parse_pairs(&s))
        .unwrap_or_default();
    let mut name = service_name.to_string();
    if let Some(pos) = extra.iter().position(|(k, _)| k == "service.name") {
        name = extra.remove(pos).1;
    }
    if let Some(n) = env("OTEL_SERVICE_NAME").filter(|n| !n.trim().is_empty()) {
        name = n;
    }
    let mut instance = service_instance.to_string();
    if let Some(pos) = extra.iter().position(|(k, _)| k == "service.instance.id") {
        instance = extra.remove(pos).1;
    }
    crate::telemetry::tracer::Identity {
        service_name: name,
        service_instance: instance,
        host_name: host_name.to_string(),
        extra,
    }
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn environment_names_the_service() {
        let env = |k: &str| match k {
            "OTEL_RESOURCE_ATTRIBUTES" => {
                Some("service.name=from-attrs,deployment.environment=prod".to_string())
            }
            "OTEL_SERVICE_NAME" => Some("from-env".to_string()),
            _ => None,
        };
        let id = identity("from-file", "pod-1", "host", &env);
        assert_eq!(id.service_name, "from-env");
        assert_eq!(id.service_instance, "pod-1");
        assert_eq!(
            id.extra,
            vec![("deployment.environment".to_string(), "prod".to_string())]
        );
        let id = identity("from-file", "pod-1", "host", &|_| None);
        assert_eq!(id.service_name, "from-file");
    }
}
