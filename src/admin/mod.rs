//! The admin listener: its own pingora service with one thread, on loopback by default.
//!
//! | path | answer |
//! |---|---|
//! | `GET /` | this list, as text |
//! | `GET /healthz` | 200 `ok` while the process is alive |
//! | `GET /readyz` | 200 once every proxy listener is bound, 503 before and while draining (SIGTERM) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /config` | JSON: active generation, source path, sha256 of the source text, load time, last reload error, the effective browser-edge (CORS and response header) settings of the defaults and each route |
//! | `POST /reload` | reload the config file now (bearer token when `server.admin_token` is set) |
//! | `GET /coverage` | per route: formats that arrive, requests without context, invalid headers, conflicts, formats injected; JSON, or an aligned table with `Accept: text/plain` |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::reload::ConfigHandle;
use crate::telemetry::{Metrics, Telemetry};

/// Whether the proxy listeners are bound and not draining; set by the server.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Marks the proxy as ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Marks the gateway as draining (SIGTERM): not ready from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True while draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// True once every proxy listener is bound, until a drain starts.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.is_draining()
    }
}

/// The admin application.
pub struct Admin {
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    telemetry: Arc<Telemetry>,
    readiness: Arc<Readiness>,
}

impl Admin {
    /// An admin app over the gateway's shared state.
    pub fn new(
        config: Arc<ConfigHandle>,
        metrics: Arc<Metrics>,
        telemetry: Arc<Telemetry>,
        readiness: Arc<Readiness>,
    ) -> Self {
        Admin {
            config,
            metrics,
            telemetry,
            readiness,
        }
    }

    fn config_json(&self) -> Vec<u8> {
        let s = self.config.load();
        let last_error = self.config.last_error().map(|e| {
            serde_json::json!({
                "at": humantime::format_rfc3339_seconds(e.at).to_string(),
                "message": e.message,
            })
        });
        let mut body = serde_json::json!({
            "generation": s.generation,
            "source": s.source.name(),
            "sha256": s.source.sha256,
            "loaded_at": humantime::format_rfc3339_seconds(s.source.loaded_at).to_string(),
            "routes": s.router.len(),
            "upstreams": s.upstreams.iter().map(|u| &*u.name).collect::<Vec<_>>(),
            "reloads": {
                "ok": self.config.reloads_ok.load(std::sync::atomic::Ordering::Relaxed),
                "error": self.config.reloads_failed.load(std::sync::atomic::Ordering::Relaxed),
            },
            "last_reload_error": last_error,
            // Routes that never match, and the like: valid, but probably not meant.
            "warnings": s.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "edge": edge_json(&s),
        })
        .to_string()
        .into_bytes();
        body.push(b'\n');
        body
    }
}

/// The effective browser-edge settings: the `[propagation]` defaults (requests that
/// match no route) and each route, by name.
fn edge_json(s: &crate::config::Snapshot) -> serde_json::Value {
    let routes: serde_json::Map<String, serde_json::Value> = (0..s.router.len())
        .filter_map(|i| s.router.route(i))
        .map(|r| (r.name.to_string(), edge_settings(&r.policy)))
        .collect();
    serde_json::json!({ "defaults": edge_settings(&s.defaults), "routes": routes })
}

fn edge_settings(p: &crate::mediate::Policy) -> serde_json::Value {
    use crate::model::Named;
    let b = &p.browser;
    let c = &b.cors;
    let names = |l: &[http::HeaderName]| l.iter().map(|h| h.to_string()).collect::<Vec<_>>();
    let origins = |l: &[crate::mediate::browser::OriginPattern]| {
        l.iter().map(|o| o.as_text()).collect::<Vec<_>>()
    };
    serde_json::json!({
        "traceresponse": p.response_header,
        "cors": {
            "mode": c.mode.name(),
            "allow_origins": origins(&c.allow_origins),
            "allow_methods": c.allow_methods.iter().map(http::Method::as_str).collect::<Vec<_>>(),
            "allow_headers": names(&c.allow_headers),
            "expose_headers": names(&c.expose_headers),
            "max_age_seconds": c.max_age.as_secs(),
            "allow_credentials": c.allow_credentials,
        },
        "server_timing": b.server_timing,
        "server_timing_durations": b.server_timing_durations,
        "trace_id_header": b.trace_id_header.as_ref().map(http::HeaderName::as_str),
        "timing_allow_origin": origins(&b.timing_allow_origin),
    })
}

impl Admin {
    /// `POST /reload`: 200 with the serving generation, 400 with every problem (the old
    /// config keeps serving), 401 without the configured bearer token.
    async fn reload(&self, req: &pingora::http::RequestHeader) -> Response<Vec<u8>> {
        let token = self.config.load().server.admin_token.clone();
        if !token.is_empty() {
            let presented = req
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if presented != Some(token.as_str()) {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    "text/plain",
                    b"missing or wrong bearer token\n".to_vec(),
                );
            }
        }
        let json = |v: serde_json::Value| {
            let mut body = v.to_string().into_bytes();
            body.push(b'\n');
            body
        };
        // A reload reads the file, resolves peer names and compiles: seconds for a large
        // config, and the admin service has one thread. Off it, as SIGHUP does, so
        // `/healthz` and `/readyz` keep answering meanwhile (a liveness probe that timed
        // out would restart a healthy gateway).
        let config = self.config.clone();
        let outcome = match tokio::task::spawn_blocking(move || config.reload()).await {
            Ok(outcome) => outcome,
            Err(e) => {
                log::error!("config reload task failed: {e}");
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    b"the reload failed; the previous config keeps serving\n".to_vec(),
                );
            }
        };
        match outcome {
            Ok(crate::reload::Reloaded::Swapped(g)) => reply(
                StatusCode::OK,
                "application/json",
                json(serde_json::json!({"generation": g, "changed": true})),
            ),
            Ok(crate::reload::Reloaded::Unchanged(g)) => reply(
                StatusCode::OK,
                "application/json",
                json(serde_json::json!({"generation": g, "changed": false})),
            ),
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                "application/json",
                json(serde_json::json!({
                    "error": "config rejected; the previous config keeps serving",
                    "problems": e.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })),
            ),
        }
    }
}

/// Every admin endpoint, one per line (`GET /`), as Envoy's admin `/` lists its own.
const ENDPOINTS: [(&str, &str); 7] = [
    ("GET  /", "this list"),
    ("GET  /healthz", "200 while the process is alive"),
    ("GET  /readyz", "200 once the proxy listeners are bound, 503 before"),
    ("GET  /metrics", "Prometheus text format"),
    (
        "GET  /config",
        "the serving config: generation, source, sha256, load time, last reload error (JSON)",
    ),
    (
        "POST /reload",
        "reload the config file now (bearer token when server.admin_token is set)",
    ),
    (
        "GET  /coverage",
        "per route: formats in and out, requests without context (JSON; text with Accept: text/plain)",
    ),
];

fn index() -> Vec<u8> {
    let mut out = format!("tracebridge {} admin\n\n", env!("CARGO_PKG_VERSION"));
    for (path, what) in ENDPOINTS {
        out.push_str(&format!("{path:<16}{what}\n"));
    }
    out.into_bytes()
}

/// True when `Accept` names `text/plain` (the table) — JSON is the default.
fn wants_text(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
        })
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.method == http::Method::POST && req.uri.path() == "/reload" {
            return self.reload(req).await;
        }
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            );
        }
        match req.uri.path() {
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.readiness.is_ready() => {
                reply(StatusCode::OK, "text/plain", b"ready\n".to_vec())
            }
            "/readyz" if self.readiness.is_draining() => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"draining\n".to_vec(),
            ),
            "/readyz" => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"not ready\n".to_vec(),
            ),
            "/" => reply(StatusCode::OK, "text/plain; charset=utf-8", index()),
            "/metrics" => {
                self.metrics.sync_exporters(
                    &self.telemetry.stats,
                    self.telemetry.exporters(),
                    self.telemetry.degraded(),
                );
                let serving = self.config.load();
                self.metrics.sync_upstreams(&serving);
                self.metrics.sync_reload_state(
                    self.config.last_error().is_none(),
                    serving.source.loaded_at,
                );
                self.metrics.sync_config(
                    self.config.load().generation,
                    self.config
                        .reloads_ok
                        .load(std::sync::atomic::Ordering::Relaxed),
                    self.config
                        .reloads_failed
                        .load(std::sync::atomic::Ordering::Relaxed),
                );
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            "/config" => reply(StatusCode::OK, "application/json", self.config_json()),
            "/coverage" => {
                let report = self.metrics.coverage.report();
                if wants_text(&req.headers) {
                    reply(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        report.to_table().into_bytes(),
                    )
                } else {
                    reply(StatusCode::OK, "application/json", report.to_json())
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
