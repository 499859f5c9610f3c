//! Capture's HTTP endpoint: `/healthz` (200 only while streaming) and `/metrics` (Prometheus).

use crate::error::{CaptureError, Result};
use crate::ops::metrics::CaptureMetrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

async fn healthz(State(metrics): State<Arc<CaptureMetrics>>) -> (StatusCode, &'static str) {
    if metrics.is_streaming() {
        (StatusCode::OK, "streaming\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not streaming\n")
    }
}

async fn prometheus(State(metrics): State<Arc<CaptureMetrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.prometheus(),
    )
}

/// Serves the endpoint on `127.0.0.1:port` (or all interfaces when `public`) in the background.
pub async fn serve(port: u16, public: bool, metrics: Arc<CaptureMetrics>) -> Result<()> {
    let address = if public { "0.0.0.0" } else { "127.0.0.1" };
    let listener = tokio::net::TcpListener::bind((address, port))
        .await
        .map_err(|e| CaptureError::Health(format!("cannot listen on {address}:{port}: {e}")))?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    });
    Ok(())
}
