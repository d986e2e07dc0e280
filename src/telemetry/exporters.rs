//! The span pipeline built from the validated `[telemetry]` settings: which exporters,
//! each behind its own queue, with which identity. `server` only asks for it.
//!
//! With several exporters (`[[telemetry.exporters]]`) each one is a span processor of
//! its own: its own bounded queue, exporter thread and counters, so a dead or slow
//! backend fills and drops only its own queue and never costs another a span (nor
//! the request path any wait: a span is only pushed into each queue).

use std::sync::Arc;

use opentelemetry_sdk::trace::{SpanExporter as _, TracerProviderBuilder};
use opentelemetry_sdk::Resource;

use super::otlp;
use super::otlp_http::OtlpHttpExporter;
use super::pipeline::{PipelineStats, QueueHandle, QueueProcessor, SdkExport};
use super::stdout::StdoutExporter;
use super::tracer::SCOPE_NAME;
use super::zipkin::ZipkinExporter;
use super::Telemetry;
use crate::config::spec::{ExporterSpec, OtlpProtocol};
use crate::config::validate::host_name;
use crate::config::{Exporter, TelemetrySettings};

impl Telemetry {
    /// The span pipeline `[telemetry]` asks for, with the standard OpenTelemetry
    /// environment variables applied over the file (for the one-exporter shorthand).
    /// Spans leave through bounded queues and exporter threads, so exporting never
    /// runs on a request's path.
    pub fn from_settings(settings: &TelemetrySettings) -> Telemetry {
        let env = |name: &str| std::env::var(name).ok();
        let identity = otlp::identity(
            &settings.service_name,
            &settings.service_instance,
            &host_name(),
            &env,
        );
        let specs = settings.exporters.clone();
        let exports = !specs.is_empty();
        // The first exporter fills the statistics block Telemetry::new hands over
        // (`Telemetry::stats`); every other one gets its own.
        let extra: Vec<Arc<PipelineStats>> = specs
            .iter()
            .skip(1)
            .map(|_| Arc::new(PipelineStats::default()))
            .collect();
        let extra_for_builder = extra.clone();
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        // The OTLP/HTTP queues, while every exporter is one.
        let mut otlp_queues = Some(Vec::new());
        let queues = &mut otlp_queues;
        let telemetry = Telemetry::new(
            &identity,
            settings.max_traces_per_second,
            settings.degradation,
            move |mut builder, resource, stats| {
                let all = std::iter::once(stats).chain(extra_for_builder);
                for (spec, stats) in specs.into_iter().zip(all) {
                    builder = add_exporter(builder, spec, resource, stats, queues);
                }
                builder
            },
        );
        let all = std::iter::once(telemetry.stats.clone()).chain(extra);
        telemetry.set_exporters(names.into_iter().zip(all).collect());
        match otlp_queues {
            _ if !exports => telemetry.without_export(),
            Some(queues) if !queues.is_empty() => telemetry.with_otlp_queues(queues.into()),
            _ => telemetry,
        }
    }
}

/// `spec`'s exporter behind a queue of its own, filling `stats`. An OTLP/HTTP queue's
/// handle is added to `otlp_queues`; any other exporter sets it to `None` (then every
/// span goes through the SDK, which all exporters take).
fn add_exporter(
    builder: TracerProviderBuilder,
    spec: ExporterSpec,
    resource: &Resource,
    stats: Arc<PipelineStats>,
    otlp_queues: &mut Option<Vec<QueueHandle<Vec<u8>>>>,
) -> TracerProviderBuilder {
    if !matches!(&spec.exporter, Exporter::Otlp(_)) {
        *otlp_queues = None;
    }
    let queue = spec.queue;
    let name = spec.name;
    match spec.exporter {
        Exporter::Otlp(file) => {
            let resolved = if spec.from_env {
                otlp::resolve(&file, &|name: &str| std::env::var(name).ok())
            } else {
                otlp::resolve(&file, &|_: &str| None)
            };
            log::info!(
                "exporter {name}: spans over OTLP ({:?}) to {}",
                resolved.protocol,
                resolved.endpoint
            );
            let resource = resource.clone();
            match resolved.protocol {
                OtlpProtocol::HttpProtobuf => {
                    let processor = QueueProcessor::start(queue, stats, move || {
                        OtlpHttpExporter::new(&resolved, &resource, SCOPE_NAME)
                            .map_err(|e| log::error!("cannot build the OTLP/HTTP exporter: {e}"))
                            .ok()
                    });
                    if let Some(queues) = otlp_queues {
                        queues.push(processor.handle());
                    }
                    builder.with_span_processor(processor)
                }
                OtlpProtocol::Grpc => {
                    *otlp_queues = None;
                    builder.with_span_processor(QueueProcessor::start(queue, stats, move || {
                        SdkExport::build(true, &resolved.endpoint, || {
                            let mut exporter = otlp::build_grpc_exporter(&resolved)?;
                            exporter.set_resource(&resource);
                            Some(exporter)
                        })
                    }))
                }
            }
        }
        Exporter::Zipkin(zipkin) => {
            log::info!(
                "exporter {name}: spans as Zipkin v2 JSON to {}",
                zipkin.endpoint
            );
            let resource = resource.clone();
            builder.with_span_processor(QueueProcessor::start(queue, stats, move || {
                ZipkinExporter::new(&zipkin, &resource)
                    .map_err(|e| log::error!("cannot build the Zipkin exporter: {e}"))
                    .ok()
            }))
        }
        Exporter::Stdout => {
            builder.with_span_processor(QueueProcessor::start(queue, stats, || {
                SdkExport::build(false, "stdout", || Some(StdoutExporter))
            }))
        }
        Exporter::None => builder,
    }
}
