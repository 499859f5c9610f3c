//! Start-up: prepare the source, connect, stream until told to stop.

use crate::args::CaptureArgs;
use crate::batcher::Batcher;
use crate::error::{CaptureError, Result};
use crate::health::{self, Readiness};
use crate::publisher::BatchPublisher;
use crate::relations::Relations;
use crate::setup::{connect_sql, ensure_publication, ensure_slot};
use crate::stream::CaptureLoop;
use pg2bq_core::pg_types::session_options;
use pgwire_replication::{ReplicationClient, ReplicationConfig};
use std::time::Duration;
use tokio::sync::watch;

/// Runs capture until SIGTERM/SIGINT or a fatal error.
pub async fn run(args: CaptureArgs) -> Result<()> {
    let readiness = Readiness::default();
    if args.health_port != 0 {
        health::serve(args.health_port, args.health_public, readiness.clone()).await?;
    }
    let catalog = connect_sql(&args.source, "pg2bq-capture-catalog").await?;
    ensure_publication(&catalog, &args.publication, &args.schemas).await?;
    ensure_slot(&catalog, &args.slot, &args.source.database).await?;

    let publisher = BatchPublisher::connect(&args.publisher()).await?;
    let client = start_replication(&args).await?;
    tracing::info!(
        source = %args.source.describe(),
        slot = %args.slot,
        publication = %args.publication,
        topic = %args.topic,
        "streaming changes"
    );
    readiness.set(true);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested");
        let _ = stop_tx.send(true);
    });

    let capture = CaptureLoop::new(
        client,
        Relations::new(catalog),
        Batcher::new(args.batch_limits()),
        publisher,
        args.max_unacked_bytes,
        Duration::from_millis(args.batch_max_delay_ms.clamp(5, 1000)),
    );
    let result = capture.run(stop_rx).await;
    readiness.set(false);
    result
}

async fn start_replication(args: &CaptureArgs) -> Result<ReplicationClient> {
    let source = &args.source;
    let config = ReplicationConfig::new(
        source.host.clone(),
        source.user.clone(),
        source.password.expose().to_owned(),
        source.database.clone(),
        args.slot.clone(),
        args.publication.clone(),
    )
    .with_port(source.port)
    .with_options(session_options())
    .with_application_name("pg2bq-capture")
    .with_status_interval(Duration::from_secs(1));
    let mut client =
        ReplicationClient::connect(config)
            .await
            .map_err(CaptureError::replication(format!(
                "connecting to {}",
                source.describe()
            )))?;
    client
        .wait_started()
        .await
        .map_err(CaptureError::replication(format!(
            "starting replication from slot {}",
            args.slot
        )))?;
    Ok(client)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
