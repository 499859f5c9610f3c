//! The write modes: how the change batch of one table lands in BigQuery.
//!
//! - [`staged`]: rows go to a change table, and a MERGE folds the newest change per key into the
//!   mirror table (`PG2BQ_MERGE_STRATEGY=staged`, and `auto`).
//! - [`native`]: rows go straight to the mirror table with BigQuery CDC pseudo-columns
//!   (`PG2BQ_MERGE_STRATEGY=native`).
//! - [`append_only`]: every change is a row of the target table, once (`PG2BQ_WRITE_MODE=append-only`,
//!   and tables without a primary key in every mode).
//!
//! Shared by the modes: [`rows`] (the values of a change, the per-key change rows staged and
//! native write, and the changes set aside), [`sink`] (where encoded rows go, refused rows set
//! apart), [`merge`] (folding staged rows into mirrors and logs), and the crate's table registry
//! and row layout.
//!
//! Every mode is a [`WriteMode`]. [`from_settings`] chooses one at start-up; [`MergeMode`] is
//! the one place that sends tables without a key to append-only.

pub mod append_only;
pub mod merge;
pub mod native;
pub mod rows;
pub mod sink;
pub mod staged;

use crate::args::{MergeStrategy, WriteModeSetting, WriterArgs};
use crate::error::Result;
use crate::generations::Generations;
use crate::mirror_layout::MirrorLayout;
use crate::shape::TableShape;
use crate::tables::TableRegistry;
use append_only::AppendOnly;
use futures::future::BoxFuture;
use merge::{MergeReport, MergeSettings, Merger};
use native::Native;
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_bigquery::storage_write::StorageWriter;
use pg2bq_core::bq_naming::{BqTableName, DatasetLayout};
use pg2bq_core::wire::ChangeBatch;
use rows::Quarantined;
use sink::RowSink;
use staged::Staged;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// What one write put into BigQuery, and what it set aside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows appended.
    pub rows: usize,
    /// Encoded bytes of those rows.
    pub bytes: usize,
    /// Changes of the batch that cannot be written, with the reason (to be quarantined).
    pub quarantined: Vec<Quarantined>,
}

impl Written {
    /// A write that appended nothing and set `quarantined` aside.
    pub fn nothing(quarantined: Vec<Quarantined>) -> Self {
        Written {
            quarantined,
            ..Written::default()
        }
    }
}

/// A way of writing change batches to BigQuery.
pub trait WriteMode: Send + Sync {
    /// Writes one change batch of the table `shape` describes (creating or evolving its tables
    /// first); returns what was written once BigQuery acknowledged it, and the changes that
    /// cannot be written. An error means nothing is known to be written: the batch is to be
    /// delivered again (or, for [`crate::error::WriterError::Unwritable`], quarantined whole).
    fn write<'a>(
        &'a self,
        batch: &'a ChangeBatch,
        shape: &'a TableShape,
    ) -> BoxFuture<'a, Result<Written>>;

    /// The periodic round that `/merge` runs; says what it did. Modes without one do nothing.
    fn merge_round(&self) -> BoxFuture<'_, Result<MergeReport>> {
        Box::pin(async { Ok(MergeReport::default()) })
    }
}

/// What [`from_settings`] builds.
pub struct Built {
    /// The write mode.
    pub mode: Box<dyn WriteMode>,
    /// The registry of tables it writes (shared with the quarantine).
    pub tables: Arc<TableRegistry>,
    /// Where its rows go (shared with the quarantine).
    pub sink: RowSink,
    /// The generation gate every batch passes first.
    pub generations: Generations,
}

/// The write mode the settings ask for, with its BigQuery clients; `layout` places the tables.
pub fn from_settings(args: &WriterArgs, layout: &DatasetLayout) -> Result<Built> {
    let target = &args.target;
    let tokens = TokenSource::for_target(target)?;
    let timeout = Duration::from_secs(args.bq_timeout_secs);
    let rest = RestClient::new(
        &target.rest_endpoint,
        &target.project,
        &target.location,
        tokens.clone(),
    )?
    .with_timeout(timeout)?
    .with_dataset_settings(
        target
            .dataset_settings()
            .map_err(|e| crate::error::WriterError::Config(e.to_string()))?,
    );
    let storage = StorageWriter::new(&target.grpc_endpoint, &target.project, tokens, timeout)?;
    let sink = RowSink::new(storage, rest.clone(), args.append_sink);
    let tables = Arc::new(TableRegistry::new(rest.clone(), target.is_emulator()));
    if args.merge_overlap_secs < args.bq_timeout_secs {
        tracing::warn!(
            overlap_s = args.merge_overlap_secs,
            bq_timeout_s = args.bq_timeout_secs,
            "PG2BQ_MERGE_OVERLAP_SECS is shorter than PG2BQ_BQ_TIMEOUT_SECS: a MERGE may miss rows \
             of an append that took longer than the overlap until the table changes again; \
             raise PG2BQ_MERGE_OVERLAP_SECS above PG2BQ_BQ_TIMEOUT_SECS"
        );
    }
    let merger = Arc::new(Merger::new(
        rest.clone(),
        layout.clone(),
        MergeSettings {
            retention: Duration::from_secs(args.change_retention_secs),
            overlap: Duration::from_secs(args.merge_overlap_secs),
            parallelism: usize::try_from(args.merge_parallelism).unwrap_or(1),
            round_budget: Duration::from_secs(args.merge_round_secs),
        },
    ));
    if args.merge_interval_ms > 0 {
        Arc::clone(&merger).spawn_timer(Duration::from_millis(args.merge_interval_ms));
    }
    if args.append_sink == crate::args::AppendSink::Bigquery {
        Arc::clone(&merger).spawn_start_round();
    }
    let mirror_layout = Arc::new(MirrorLayout::parse(
        args.bq_partitioning.as_deref(),
        args.bq_clustering.as_deref(),
    )?);
    let generations = Generations::new(rest, Arc::clone(&tables), Arc::clone(&merger));
    let append_only = AppendOnly::new(Arc::clone(&tables), sink.clone(), Arc::clone(&merger));
    let mode: Box<dyn WriteMode> = match (args.write_mode, args.merge_strategy) {
        (WriteModeSetting::AppendOnly, _) => Box::new(append_only),
        (WriteModeSetting::Merge, MergeStrategy::Native) if args.soft_deletes => {
            return Err(crate::error::WriterError::Config(
                "PG2BQ_SOFT_DELETES needs the staged strategy: BigQuery's native CDC removes \
                 deleted rows; set PG2BQ_MERGE_STRATEGY=staged (or auto), or unset \
                 PG2BQ_SOFT_DELETES"
                    .to_owned(),
            ));
        }
        (WriteModeSetting::Merge, MergeStrategy::Native) => Box::new(MergeMode::new(
            Box::new(Native::new(
                Arc::clone(&tables),
                sink.clone(),
                args.max_staleness_secs,
                Arc::clone(&mirror_layout),
            )),
            append_only,
        )),
        // `auto` is staged: only staged replicates TRUNCATE exactly.
        (WriteModeSetting::Merge, MergeStrategy::Auto | MergeStrategy::Staged) => {
            Box::new(MergeMode::new(
                Box::new(Staged::new(
                    Arc::clone(&tables),
                    sink.clone(),
                    merger,
                    args.soft_deletes,
                    mirror_layout,
                )),
                append_only,
            ))
        }
    };
    Ok(Built {
        mode,
        tables,
        sink,
        generations,
    })
}

/// Merge mode: tables with a primary key are mirrored by the merge strategy (staged or native);
/// tables without one cannot be mirrored, and are written append-only.
pub struct MergeMode {
    strategy: Box<dyn WriteMode>,
    keyless: AppendOnly,
    keyless_warned: Mutex<HashSet<BqTableName>>,
}

impl MergeMode {
    /// Mirrors with `strategy`, and writes tables without a key with `keyless`.
    pub fn new(strategy: Box<dyn WriteMode>, keyless: AppendOnly) -> Self {
        MergeMode {
            strategy,
            keyless,
            keyless_warned: Mutex::new(HashSet::new()),
        }
    }

    async fn warn_once(&self, shape: &TableShape) {
        if self
            .keyless_warned
            .lock()
            .await
            .insert(shape.target.clone())
        {
            tracing::warn!(
                dataset = %shape.target.dataset,
                table = %shape.target.table,
                "table has no primary key, so it cannot be mirrored: it is written append-only \
                 (every change a row); add a primary key to mirror it"
            );
        }
    }
}

impl WriteMode for MergeMode {
    fn write<'a>(
        &'a self,
        batch: &'a ChangeBatch,
        shape: &'a TableShape,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move {
            if shape.has_key() {
                self.strategy.write(batch, shape).await
            } else {
                self.warn_once(shape).await;
                self.keyless.write(batch, shape).await
            }
        })
    }

    /// The merger's round: it folds mirrors and logs alike (tables without a key are logs even
    /// under the native strategy).
    fn merge_round(&self) -> BoxFuture<'_, Result<MergeReport>> {
        self.keyless.merge_round()
    }
}
