//! `/healthz`: ready only while the replication stream is open.

use crate::error::{CaptureError, Result};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared flag: whether capture is streaming.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks capture as streaming or not.
    pub fn set(&self, streaming: bool) {
        self.0.store(streaming, Ordering::Relaxed);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

async fn healthz(State(readiness): State<Readiness>) -> (StatusCode, &'static str) {
    if readiness.get() {
        (StatusCode::OK, "streaming\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not streaming\n")
    }
}

/// Serves `/healthz` on `127.0.0.1:port` (or all interfaces when `public`) in the background.
pub async fn serve(port: u16, public: bool, readiness: Readiness) -> Result<()> {
    let address = if public { "0.0.0.0" } else { "127.0.0.1" };
    let listener = tokio::net::TcpListener::bind((address, port))
        .await
        .map_err(|e| CaptureError::Health(format!("cannot listen on {address}:{port}: {e}")))?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .with_state(readiness);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    });
    Ok(())
}
