//! The span pipeline built from the validated `[telemetry]` settings: which exporter,
//! behind which queue, with which identity. `server` only asks for it.

use opentelemetry_sdk::trace::SpanExporter as _;

use super::otlp;
use super::otlp_http::OtlpHttpExporter;
use super::pipeline::{QueueProcessor, SdkExport};
use super::stdout::StdoutExporter;
use super::tracer::SCOPE_NAME;
use super::Telemetry;
use crate::config::spec::OtlpProtocol;
use crate::config::validate::host_name;
use crate::config::{Exporter, TelemetrySettings};

impl Telemetry {
    /// The span pipeline `[telemetry]` asks for, with the standard OpenTelemetry
    /// environment variables applied over the file. Spans leave through a bounded queue
    /// and an exporter thread, so exporting never runs on a request's path.
    pub fn from_settings(settings: &TelemetrySettings) -> Telemetry {
        let env = |name: &str| std::env::var(name).ok();
        let identity = otlp::identity(
            &settings.service_name,
            &settings.service_instance,
            &host_name(),
            &env,
        );
        let exporter = settings.exporter.clone();
        let exports = !matches!(exporter, Exporter::None);
        let queue = settings.queue;
        let telemetry =
            Telemetry::new(
                &identity,
                settings.max_traces_per_second,
                settings.degradation,
                move |builder, resource, stats| match exporter {
                    Exporter::Otlp(file) => {
                        let resolved = otlp::resolve(&file, &env);
                        log::info!(
                            "exporting spans over OTLP ({:?}) to {}",
                            resolved.protocol,
                            resolved.endpoint
                        );
                        let resource = resource.clone();
                        match resolved.protocol {
                            OtlpProtocol::HttpProtobuf => builder.with_span_processor(
                                QueueProcessor::start(queue, stats, move || {
                                    OtlpHttpExporter::new(&resolved, &resource, SCOPE_NAME)
                                        .map_err(|e| {
                                            log::error!("cannot build the OTLP/HTTP exporter: {e}")
                                        })
                                        .ok()
                                }),
                            ),
                            OtlpProtocol::Grpc => builder.with_span_processor(
                                QueueProcessor::start(queue, stats, move || {
                                    SdkExport::build(true, &resolved.endpoint, || {
                                        let mut exporter = otlp::build_grpc_exporter(&resolved)?;
                                        exporter.set_resource(&resource);
                                        Some(exporter)
                                    })
                                }),
                            ),
                        }
                    }
                    Exporter::Stdout => {
                        builder.with_span_processor(QueueProcessor::start(queue, stats, || {
                            SdkExport::build(false, "stdout", || Some(StdoutExporter))
                        }))
                    }
                    Exporter::None => builder,
                },
            );
        if exports {
            telemetry
        } else {
            telemetry.without_export()
        }
    }
}
