//! `pg2bq stream create|start|pause|resume|status|delete`.

use clap::Subcommand;
use pg2bq_cli::error::{CliError, Result};
use pg2bq_cli::{profile, stream};
use pg2bq_core::config::{
    MergeStrategy, SelectionArgs, SourceArgs, StreamArgs, TargetArgs, WriteModeSetting,
};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_source::catalog::Catalog;
use pg2bq_source::state::stream::DesiredState;
use std::process::ExitCode;

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct StreamCommand {
    #[command(subcommand)]
    pub action: StreamAction,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Print JSON instead of text (status).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StreamAction {
    /// Record a new stream, not started: checks the source and the BigQuery names of the
    /// selected tables, creates the state schema and the publication of the selected tables.
    /// Capture waits until `start`; the slot is created then.
    Create {
        #[command(flatten)]
        tables: SelectionArgs,
        /// Where the tables land in BigQuery (the dataset settings and the rename map), for the
        /// check of their BigQuery names.
        #[command(flatten)]
        target: TargetArgs,
        /// How the writer will mirror the tables (`PG2BQ_MERGE_STRATEGY`): with `native`, tables
        /// whose unchanged TOAST values native CDC cannot apply are refused.
        #[arg(long, env = "PG2BQ_MERGE_STRATEGY", value_enum, default_value_t = MergeStrategy::Auto)]
        merge_strategy: MergeStrategy,
        /// `merge` or `append-only` (`PG2BQ_WRITE_MODE`).
        #[arg(long, env = "PG2BQ_WRITE_MODE", value_enum, default_value_t = WriteModeSetting::Merge)]
        write_mode: WriteModeSetting,
        /// Create it even if a source check fails.
        #[arg(long)]
        force: bool,
    },
    /// Start a created stream: capture creates the slot, backfills and streams within seconds.
    Start,
    /// Stop reading changes: the slot keeps them (and its WAL) until `resume`.
    Pause,
    /// Continue reading changes from where the stream paused.
    Resume,
    /// The stream's state and slot lag, and per table: phase (created, backfilling, streaming,
    /// paused, failed, degraded), rows, changes, freshness, quarantined changes and last error. Freshness needs the target
    /// (PG2BQ_PROJECT and the BigQuery settings); without it, it shows `-`.
    Status {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Forget the stream (stop capture first). The slot and the publication stay unless asked:
    /// a kept slot goes on holding WAL.
    Delete {
        /// Also drop the replication slot (its position is lost for good).
        #[arg(long)]
        drop_slot: bool,
        /// Also drop the publication.
        #[arg(long)]
        drop_publication: bool,
    },
}

/// Runs a `pg2bq stream` subcommand.
pub async fn run_stream(args: StreamCommand) -> Result<ExitCode> {
    let source = connect_sql(&args.source, "pg2bq-stream").await?;
    let slot = &args.stream.slot;
    match &args.action {
        StreamAction::Create {
            tables,
            target,
            merge_strategy,
            write_mode,
            force,
        } => {
            let native =
                *write_mode == WriteModeSetting::Merge && *merge_strategy == MergeStrategy::Native;
            return create_stream(&source, &args, tables, target, native, *force).await;
        }
        StreamAction::Pause | StreamAction::Resume | StreamAction::Start => {
            let desired = if matches!(args.action, StreamAction::Pause) {
                DesiredState::Paused
            } else {
                DesiredState::Running
            };
            stream::set_state(&source, &args.stream, desired).await?;
            println!(
                "stream on slot {slot}: {} (capture follows within a second)",
                desired.as_str()
            );
        }
        StreamAction::Delete {
            drop_slot,
            drop_publication,
        } => {
            let deleted =
                stream::delete(&source, &args.stream, *drop_slot, *drop_publication).await?;
            if deleted.slot_kept {
                println!(
                    "warning: slot {slot} still exists and holds WAL: drop it with --drop-slot, or start capture again"
                );
            }
            let said = |done: bool| if done { "dropped" } else { "kept" };
            println!(
                "stream on slot {slot} deleted (slot {}, publication {})",
                said(deleted.slot_dropped),
                said(deleted.publication_dropped)
            );
        }
        StreamAction::Status { target } => {
            let bigquery = if target.has_project() {
                Some((
                    pg2bq_cli::target::client(target)?,
                    pg2bq_cli::target::layout(target)?,
                ))
            } else {
                None
            };
            let status = pg2bq_cli::stream_status::status(
                &source,
                &args.stream,
                bigquery.as_ref().map(|(client, layout)| (client, layout)),
            )
            .await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serialises")
                );
            } else {
                print!("{}", pg2bq_cli::stream_status::render(&status));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_stream(
    source: &tokio_postgres::Client,
    args: &StreamCommand,
    tables: &SelectionArgs,
    target: &TargetArgs,
    native: bool,
    force: bool,
) -> Result<ExitCode> {
    let selection = tables
        .selection()
        .map_err(|e| CliError::Config(e.to_string()))?;
    let layout = pg2bq_cli::target::layout(target)?;
    let selected = Catalog::new()
        .selected_tables(source, &selection, &args.stream.state_schema)
        .await?;
    let mut checks = profile::server_checks(&profile::server_facts(source).await?);
    checks.extend(profile::table_checks(&selected));
    let ids: Vec<_> = selected.iter().map(|t| t.id.clone()).collect();
    checks.extend(profile::skipped_checks(
        &pg2bq_source::catalog::unpublishable(source, &ids).await?,
    ));
    checks.extend(profile::row_security_checks(source, &selected).await?);
    checks.extend(profile::money_checks(&args.source, &selected).await);
    if native {
        checks.extend(profile::native_strategy_checks(&selected));
    }
    checks.extend(profile::name_checks(
        &selected,
        &layout,
        &args.stream.state_schema,
    ));
    let failed = checks.iter().any(|c| c.outcome == profile::Outcome::Fail);
    if failed && !force {
        eprint!("{}", profile::render(&checks));
        return Err(CliError::Config(
            "the source is not ready for a stream (see the failed checks and their fixes above); \
             fix them, or create the stream anyway with --force"
                .to_owned(),
        ));
    }
    let created = stream::create(source, &args.stream, &selection).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&created).expect("stream serialises")
        );
    } else {
        println!(
            "stream created on slot {} with publication {} ({} tables: {}); start it with `pg2bq stream start`",
            created.slot,
            created.publication,
            created.tables.len(),
            created.tables.join(", ")
        );
        if !created.skipped.is_empty() {
            println!(
                "skipped (not replicated until they have a primary key or REPLICA IDENTITY FULL; \
                 see `pg2bq stream status`): {}",
                created.skipped.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
