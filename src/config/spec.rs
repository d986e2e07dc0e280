//! The validated telemetry settings: what `validate` produces from `[telemetry]` and
//! what `telemetry` builds its pipeline from. They live in `config` so that imports run
//! one way (`config → telemetry`); the checks that produce them stay in `validate.rs`.
//!
//! The closed sets of words (`exporter`, `protocol`, `compression`) are declared with
//! [`named_enum!`](crate::model::named), like every other config choice: parsing and the
//! "expected …" message read one table.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::named::named_enum;

named_enum! {
    /// `telemetry.exporter`: where spans go.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ExporterKind("exporter") {
        /// OTLP to a collector.
        Otlp = "otlp",
        /// JSON lines on standard output.
        Stdout = "stdout",
        /// Nowhere.
        None = "none",
    }
}

named_enum! {
    /// `telemetry.protocol`: the OTLP transport. `http` is a shorthand the gateway has
    /// always accepted (also from `OTEL_EXPORTER_OTLP_PROTOCOL`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum OtlpProtocol("protocol") {
        /// Protobuf over HTTP (the default), port 4318.
        HttpProtobuf = "http/protobuf" | "http",
        /// gRPC, port 4317.
        Grpc = "grpc",
    }
}

named_enum! {
    /// `telemetry.compression` of OTLP payloads. An empty value means the default, as an
    /// unset `OTEL_EXPORTER_OTLP_COMPRESSION` does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Compression("compression") {
        /// Uncompressed (the OpenTelemetry SDKs' default too).
        #[default]
        None = "none" | "",
        /// gzip, the one compression every OTLP receiver must accept.
        Gzip = "gzip",
    }
}

named_enum! {
    /// `kind` of one `[[telemetry.exporters]]` entry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ExporterEntryKind("kind") {
        /// OTLP (`protocol` says HTTP or gRPC).
        Otlp = "otlp",
        /// Zipkin v2 JSON (`POST /api/v2/spans`): Zipkin, and the Zipkin receivers of
        /// Jaeger, SkyWalking OAP and the OpenTelemetry Collector.
        Zipkin = "zipkin",
        /// JSON lines on standard output.
        Stdout = "stdout",
    }
}

/// Default Zipkin endpoint (Zipkin's own port and path).
pub const DEFAULT_ZIPKIN_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";

/// A Zipkin v2 JSON exporter's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ZipkinSettings {
    /// The full URL spans are posted to (`…/api/v2/spans`).
    pub endpoint: String,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Timeout of one export call.
    pub timeout: Duration,
}

/// One exporter of the span pipeline, with its own queue and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterSpec {
    /// Its name: the `exporter` label of its metrics and its failure log lines.
    pub name: String,
    /// Where its spans go (never [`Exporter::None`]).
    pub exporter: Exporter,
    /// Its queue.
    pub queue: QueueSettings,
    /// The OpenTelemetry environment (`OTEL_EXPORTER_OTLP_*`) applies: the
    /// single-exporter shorthand only; list entries say everything themselves.
    pub from_env: bool,
}

named_enum! {
    /// `[telemetry.logs_to_traces] format`: what `tracebridge logs-to-traces` reads.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum LogFormat("format") {
        /// AWS Application Load Balancer access log entries (space-separated, the
        /// `trace_id` field holding `X-Amzn-Trace-Id`).
        Alb = "alb",
        /// tracebridge's own JSON access log.
        Tracebridge = "tracebridge",
        /// JSON lines with the field names of [`LogFields`] (nginx `escape=json`,
        /// Envoy `json_format`).
        Json = "json",
    }
}

/// Where a generic JSON log line keeps what a span needs: field names, the trace
/// headers it logged, and how to read its time and duration.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFields {
    /// The request's time (RFC 3339 text, or epoch seconds).
    pub time: String,
    /// The request's duration, in `duration_unit`.
    pub duration: String,
    /// HTTP method.
    pub method: String,
    /// Path (a query is cut off).
    pub path: String,
    /// Response status.
    pub status: String,
    /// Host the client addressed.
    pub host: String,
    /// User agent.
    pub user_agent: String,
    /// Client address.
    pub client: String,
    /// Logged trace headers: (header name, field). Empty = every known trace header
    /// name is looked up as a field of the same name.
    pub headers: Vec<(String, String)>,
    /// `time` is when the response ended (nginx `$time_iso8601`), not when the request
    /// arrived (Envoy `%START_TIME%`).
    pub time_at_end: bool,
    /// Seconds per unit of `duration`: 1 (nginx `$request_time`), 0.001 (Envoy
    /// `%DURATION%`), 0.000001.
    pub duration_unit: f64,
}

impl Default for LogFields {
    fn default() -> Self {
        LogFields {
            time: "time".into(),
            duration: "duration".into(),
            method: "method".into(),
            path: "path".into(),
            status: "status".into(),
            host: "host".into(),
            user_agent: "user_agent".into(),
            client: "client".into(),
            headers: Vec::new(),
            time_at_end: false,
            duration_unit: 1.0,
        }
    }
}

impl LogFields {
    /// The field names a mapping may set.
    pub const KEYS: [&'static str; 8] = [
        "time",
        "duration",
        "method",
        "path",
        "status",
        "host",
        "user_agent",
        "client",
    ];

    /// Maps `key` (one of [`Self::KEYS`], or `header:NAME` for a trace header) to the
    /// JSON field `field`. `Err` says why not.
    pub fn set(&mut self, key: &str, field: &str) -> Result<(), String> {
        if let Some(header) = key.strip_prefix("header:") {
            let header = header.to_ascii_lowercase();
            if !is_trace_header(&header) {
                return Err(format!("{header:?} is not a trace header of any format"));
            }
            self.headers.retain(|(h, _)| *h != header);
            self.headers.push((header, field.to_string()));
            return Ok(());
        }
        let slot = match key {
            "time" => &mut self.time,
            "duration" => &mut self.duration,
            "method" => &mut self.method,
            "path" => &mut self.path,
            "status" => &mut self.status,
            "host" => &mut self.host,
            "user_agent" => &mut self.user_agent,
            "client" => &mut self.client,
            other => {
                return Err(format!(
                    "unknown field {other:?}: expected one of {} or header:NAME",
                    Self::KEYS.join(", ")
                ))
            }
        };
        *slot = field.to_string();
        Ok(())
    }

    /// `duration_unit` from its name.
    pub fn unit(name: &str) -> Option<f64> {
        match name {
            "s" => Some(1.0),
            "ms" => Some(0.001),
            "us" => Some(0.000_001),
            _ => None,
        }
    }
}

/// Whether `name` (lowercase) is a header some format reads (or a prefixed one).
pub fn is_trace_header(name: &str) -> bool {
    crate::codec::Format::ALL.iter().any(|f| {
        f.headers().iter().any(|h| h.as_str() == name)
            || f.prefixes().iter().any(|p| name.starts_with(p))
    })
}

/// `[telemetry.logs_to_traces]`: the defaults of `tracebridge logs-to-traces` (the
/// command line overrides each).
#[derive(Debug, Clone, PartialEq)]
pub struct LogsSettings {
    /// What the lines are.
    pub format: LogFormat,
    /// For [`LogFormat::Json`].
    pub fields: LogFields,
}

impl Default for LogsSettings {
    fn default() -> Self {
        LogsSettings {
            format: LogFormat::Json,
            fields: LogFields::default(),
        }
    }
}

/// The file's OTLP values, before the environment is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpFileSettings {
    /// `protocol`.
    pub protocol: OtlpProtocol,
    /// `endpoint`: a base URL (`http://collector:4318`); empty = the protocol's default.
    pub endpoint: String,
    /// `headers`.
    pub headers: BTreeMap<String, String>,
    /// `timeout`.
    pub timeout: Duration,
    /// `compression`.
    pub compression: Compression,
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq)]
pub enum Exporter {
    /// OTLP to a collector (environment variables override these file values).
    Otlp(OtlpFileSettings),
    /// Zipkin v2 JSON (a `[[telemetry.exporters]]` entry only).
    Zipkin(ZipkinSettings),
    /// JSON lines on standard output.
    Stdout,
    /// Nowhere (spans are still made, so ids and sampling behave the same).
    None,
}

/// The export queue and its batching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSettings {
    /// Spans the queue holds before dropping.
    pub queue_size: usize,
    /// Spans per export call at most.
    pub batch_size: usize,
    /// Longest a span waits before its batch is exported.
    pub batch_delay: Duration,
}

/// When to stop making spans (propagation only) and when to start again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DegradationSettings {
    /// Degrade when the export queue stays above this share of its capacity.
    pub high_water: f64,
    /// Recover when it stays below this share.
    pub low_water: f64,
    /// Degrade when more spans than this start per second (0 = no limit).
    pub max_spans_per_second: f64,
    /// How long a condition must hold before switching either way.
    pub hold: Duration,
}

impl Default for DegradationSettings {
    fn default() -> Self {
        DegradationSettings {
            high_water: 0.8,
            low_water: 0.2,
            max_spans_per_second: 0.0,
            hold: Duration::from_secs(1),
        }
    }
}

/// Validated `[telemetry]` and the process-wide part of `[sampling]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// `service.name`.
    pub service_name: String,
    /// `service.instance.id` (the host name when not configured).
    pub service_instance: String,
    /// The exporter (with `[[telemetry.exporters]]`, the first entry's).
    pub exporter: Exporter,
    /// Every exporter, each with its own queue: the list, or the single `exporter`
    /// (none for `"none"`).
    pub exporters: Vec<ExporterSpec>,
    /// Sampled new roots per second; 0 = no cap.
    pub max_traces_per_second: f64,
    /// The export queue.
    pub queue: QueueSettings,
    /// Dynamic degradation.
    pub degradation: DegradationSettings,
    /// `tracebridge logs-to-traces` defaults.
    pub logs: LogsSettings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Named;

    #[test]
    fn names_parse_back_and_aliases_stay_out_of_messages() {
        for (name, v) in ExporterKind::NAMES {
            assert_eq!(ExporterKind::from_name(name), Some(*v));
            assert_eq!(v.name(), *name);
        }
        assert_eq!(ExporterKind::expected(), "\"otlp\", \"stdout\" or \"none\"");
        assert_eq!(
            OtlpProtocol::from_name("http"),
            Some(OtlpProtocol::HttpProtobuf)
        );
        assert_eq!(OtlpProtocol::expected(), "\"http/protobuf\" or \"grpc\"");
        assert_eq!(Compression::from_name(""), Some(Compression::None));
        assert_eq!(Compression::expected(), "\"none\" or \"gzip\"");
        assert_eq!(Compression::from_name("zstd"), None);
    }

    #[test]
    fn a_config_with_unknown_words_names_the_accepted_ones() {
        let text = "[telemetry]\nexporter = \"jaeger\"\n";
        let err = crate::config::load_str(text, None, 1).expect_err("unknown exporter");
        assert!(
            err.to_string().contains(
                "telemetry.exporter: unknown exporter \"jaeger\": expected \"otlp\", \"stdout\" or \"none\""
            ),
            "{err}"
        );
        let text =
            "[telemetry]\nexporter = \"otlp\"\nprotocol = \"thrift\"\ncompression = \"zstd\"\n";
        let err = crate::config::load_str(text, None, 1)
            .expect_err("unknown protocol and compression")
            .to_string();
        assert!(
            err.contains("telemetry.protocol: unknown protocol \"thrift\": expected \"http/protobuf\" or \"grpc\""),
            "{err}"
        );
        assert!(
            err.contains("telemetry.compression: unknown compression \"zstd\": expected \"none\" or \"gzip\""),
            "{err}"
        );
        let text = "[upstreams.e]\nkind = \"echo\"\n[[routes]]\nupstream = \"e\"\n\
                    [telemetry]\nexporter = \"otlp\"\nprotocol = \"http\"\ncompression = \"gzip\"\n";
        let snapshot = crate::config::load_str(text, None, 1).expect("valid");
        assert_eq!(
            snapshot.telemetry.exporter,
            Exporter::Otlp(OtlpFileSettings {
                protocol: OtlpProtocol::HttpProtobuf,
                endpoint: String::new(),
                headers: BTreeMap::new(),
                timeout: Duration::from_secs(10),
                compression: Compression::Gzip,
            })
        );
    }
}
