//! The HTTP endpoint: `/metrics` (OpenMetrics when the scraper asks for it,
//! else the Prometheus text format), `/healthz` (liveness: the pipeline
//! ticked recently) and `/readyz` (readiness: XDP attached through the
//! pins on every interface, the journal usable).

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::Metrics;
use crate::kernel::pins::PinDir;

/// The pipeline ticks every second; this many seconds without a tick is
/// a stuck daemon.
pub const LIVENESS_SECS: f64 = 30.0;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen for metrics on {addr}: {source} (pick another port with --metrics-addr or [metrics] addr)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds `addr` now (so a taken port fails `blocker run` at start) and
/// serves in the background.
pub async fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    registry: Registry,
) -> Result<SocketAddr, ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    info!("serving metrics on http://{local}/metrics (and /healthz, /readyz)");
    let state = Arc::new((metrics, registry));
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(respond(&state.0, &state.1, &req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn respond(
    metrics: &Metrics,
    registry: &Registry,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let plain = "text/plain; charset=utf-8";
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/openmetrics-text"));
            let mut body = String::new();
            let encoded = if openmetrics {
                prometheus_client::encoding::text::encode(&mut body, registry)
            } else {
                prometheus_client::encoding::prometheus_text::encode(&mut body, registry)
            };
            match encoded {
                Ok(()) => text(
                    StatusCode::OK,
                    if openmetrics {
                        OPENMETRICS
                    } else {
                        PROMETHEUS_TEXT
                    },
                    body,
                ),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    plain,
                    "encoding the metrics failed\n".into(),
                ),
            }
        }
        "/healthz" => match metrics.since_heartbeat_secs() {
            Some(s) if s < LIVENESS_SECS => text(StatusCode::OK, plain, "ok\n".into()),
            Some(s) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                plain,
                format!("the pipeline has not ticked for {s:.0} s\n"),
            ),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                plain,
                "the pipeline has not started\n".into(),
            ),
        },
        "/readyz" => {
            let problems = not_ready(metrics);
            if problems.is_empty() {
                text(StatusCode::OK, plain, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    plain,
                    format!("not ready: {}\n", problems.join("; ")),
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            plain,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// Why the daemon is not ready (empty = ready).
fn not_ready(metrics: &Metrics) -> Vec<String> {
    let r = metrics.readiness();
    let mut problems = Vec::new();
    if metrics.since_heartbeat_secs().is_none() {
        problems.push("the pipeline has not started".to_string());
    }
    let pins = PinDir::new(&r.pin_dir);
    if !pins.is_loaded() {
        problems.push(format!("no pinned maps under {}", r.pin_dir.display()));
    }
    for iface in &r.interfaces {
        if !pins.link(iface).exists() {
            problems.push(format!("XDP is not attached on {iface}"));
        }
    }
    if let Some(e) = &r.journal_error {
        problems.push(format!("journal degraded: {e}"));
    }
    problems
}
