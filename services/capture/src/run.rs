//! Capture's life: sessions of streaming, reconnected with backoff after transient failures.
//!
//! A session prepares the source (state schema, publication, slot), starts replication from the
//! slot's confirmed position, and streams until it is stopped or fails. Nothing is carried from
//! one session to the next: the slot is the only position, so after any failure the next session
//! replays whatever was not confirmed (duplicates are harmless downstream).

use crate::backfill::Backfill;
use crate::control::maintenance::Maintenance;
use crate::control::slot::{ensure_slot, wait_until_started};
use crate::control::table_events::TableEvents;
use crate::error::{CaptureError, Result};
use crate::ops::args::CaptureArgs;
use crate::ops::http;
use crate::ops::metrics::CaptureMetrics;
use crate::pipeline::batcher::Batcher;
use crate::pipeline::capture_loop::{CaptureLoop, LoopSettings};
use crate::sinks::{self, BatchSink};
use crate::source::postgres::PgChangeSource;
use crate::source::shapes::Shapes;
use pg2bq_core::config::MergeStrategy;
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::protect::Protection;
use pg2bq_source::publication;
use pg2bq_source::server::ServerRole;
use pg2bq_source::state::StateStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A session that lasted this long resets the reconnection backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);

/// Runs capture until SIGTERM/SIGINT or a fatal error.
pub async fn run(args: CaptureArgs) -> Result<()> {
    args.check()?;
    let selection = args.selection()?;
    let protection = Arc::new(args.protect.resolve().await?);
    if !protection.is_empty() {
        tracing::info!(protect = ?protection, "protected columns are hashed or masked before they are published");
    }
    let metrics = Arc::new(CaptureMetrics::default());
    if args.health_port != 0 {
        http::serve(args.health_port, args.health_public, Arc::clone(&metrics)).await?;
    }
    if args.metrics_log_secs > 0 {
        Arc::clone(&metrics).spawn_logger(Duration::from_secs(args.metrics_log_secs));
    }
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        pg2bq_core::shutdown::requested().await;
        tracing::info!("stop requested");
        let _ = stop_tx.send(true);
    });
    let sink = sinks::connect(&args.sink()).await?;
    let maintenance = Maintenance {
        source: args.source.clone(),
        stream: args.stream.clone(),
        selection: selection.clone(),
        heartbeat: Duration::from_secs(args.heartbeat_secs),
        publication_refresh: Duration::from_secs(args.publication_refresh_secs.max(1)),
        events: TableEvents::new(
            state(&args),
            shapes(&args),
            Arc::clone(&sink),
            Arc::clone(&protection),
            &args.stream.publication,
            selection.columns().clone(),
        ),
    };
    let backfill = Backfill {
        source: args.source.clone(),
        stream: args.stream.clone(),
        mode: args.backfill,
        exclude: args.backfill_exclusions()?,
        concurrency: args.backfill_concurrency,
        range_blocks: args.backfill_range_blocks,
        poll: Duration::from_secs(args.publication_refresh_secs.max(1)),
        limits: args.batch_limits(),
        sink: Arc::clone(&sink),
        protection: Arc::clone(&protection),
        shapes: shapes(&args),
        columns: selection.columns().clone(),
    };
    // Started once the main slot exists: a backfill snapshot must be newer than the slot.
    let mut background = Some((maintenance, backfill));
    let paused = crate::control::pause::follow(args.source.clone(), state(&args));
    let max_delay = Duration::from_secs(args.reconnect_max_secs.max(1));
    let mut delay = Duration::from_millis(500);
    loop {
        let started = Instant::now();
        let outcome = session(
            &args,
            &sink,
            &protection,
            &metrics,
            &mut background,
            &paused,
            stop_rx.clone(),
        )
        .await;
        metrics.set_streaming(false);
        let error = match outcome {
            Ok(()) => return Ok(()),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => e,
        };
        if started.elapsed() >= HEALTHY_SESSION {
            delay = Duration::from_millis(500);
        }
        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "capture session ended; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => return Ok(()),
        }
        delay = (delay * 2).min(max_delay);
    }
}

/// Errors that a new session cannot cure: wrong settings, an unusable slot, a stream capture
/// cannot decode. Capture exits with them (and the platform's restart policy and alerts act).
fn is_fatal(error: &CaptureError) -> bool {
    match error {
        CaptureError::Config(_)
        | CaptureError::Slot(_)
        | CaptureError::Decode(_)
        | CaptureError::Health(_) => true,
        CaptureError::Source(e) => e.is_config(),
        CaptureError::State(pg2bq_source::SourceError::Setting(_)) => true,
        _ => false,
    }
}

async fn session(
    args: &CaptureArgs,
    sink: &Arc<dyn BatchSink>,
    protection: &Arc<Protection>,
    metrics: &Arc<CaptureMetrics>,
    background: &mut Option<(Maintenance, Backfill)>,
    paused: &watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let catalog = connect_sql(&args.source, "pg2bq-capture-catalog").await?;
    // A standby is refused before anything is written (pg2bq writes its state and the
    // publication into the source database).
    let role = ServerRole::read(&catalog).await?;
    if let Some(problem) = role.standby_problem() {
        return Err(CaptureError::Config(problem.to_string()));
    }
    let state = state(args);
    // The state schema is at this build's version before streaming starts (and so before
    // /healthz is green).
    state.migrate(&catalog).await?;
    let mut stop_waiting = stop.clone();
    if !wait_until_started(&catalog, &state, &mut stop_waiting).await? {
        return Ok(());
    }
    let selection = args.selection()?;
    // Settings this server cannot follow stop capture (no reconnection cures them).
    let version = pg2bq_source::server::version_num(&catalog).await?;
    pg2bq_source::publication_columns::check_version(selection.columns(), version)
        .map_err(|e| CaptureError::Config(e.to_string()))?;
    let stream = &args.stream;
    let reconciled = publication::reconcile(
        &catalog,
        &stream.publication,
        &selection,
        &stream.state_schema,
    )
    .await?;
    state.record_skipped(&catalog, &reconciled.skipped).await?;
    let published = pg2bq_source::catalog::Catalog::new()
        .publication_tables(&catalog, &stream.publication)
        .await?;
    crate::control::protection::check(&catalog, &state, protection, &published).await?;
    for skipped in &reconciled.skipped {
        tracing::warn!(table = %skipped.table, reason = %skipped.reason, fix = %skipped.fix, "table skipped: it is not replicated");
    }
    for table in reconciled.added.iter().chain(&reconciled.changed) {
        state.reset_backfill(&catalog, table).await?;
    }
    ensure_slot(&catalog, &state, &args.source, &stream.publication, role).await?;
    if let Some((maintenance, backfill)) = background.take() {
        maintenance.spawn(Arc::clone(metrics));
        backfill.spawn();
    }
    let source = PgChangeSource::start(
        &args.source,
        &stream.slot,
        &stream.publication,
        catalog,
        shapes(args),
        selection.columns().clone(),
    )
    .await?;
    tracing::info!(
        source = %args.source.describe(),
        sslmode = args.source.tls.sslmode.as_str(),
        slot = %stream.slot,
        publication = %stream.publication,
        topic = %args.pubsub.topic,
        "streaming changes"
    );
    metrics.set_streaming(true);
    let capture = CaptureLoop::new(
        source,
        Arc::clone(sink),
        Batcher::new(args.batch_limits()),
        LoopSettings {
            max_unacked_bytes: args.max_unacked_bytes,
            flush_interval: Duration::from_millis(args.batch_max_delay_ms.clamp(5, 1000)),
            metrics: Arc::clone(metrics),
            paused: paused.clone(),
            protection: Arc::clone(protection),
        },
    );
    capture.run(stop).await
}

/// The stream's table shapes and generations.
fn shapes(args: &CaptureArgs) -> Shapes {
    Shapes::new(state(args), args.merge_strategy == MergeStrategy::Native)
}

/// The stream's state in the state schema.
fn state(args: &CaptureArgs) -> StateStore {
    StateStore::new(&args.stream.state_schema, &args.stream.slot)
}
