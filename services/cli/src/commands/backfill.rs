//! `pg2bq backfill [schema.table]`: progress per table, or a table copied again.

use pg2bq_cli::backfill_status;
use pg2bq_cli::error::{CliError, Result};
use pg2bq_cli::stream::state;
use pg2bq_core::config::{SourceArgs, StreamArgs, TargetArgs};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::protect::ProtectArgs;
use pg2bq_core::wire::TableId;
use pg2bq_source::catalog::Catalog;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::stream::RecordedProtection;
use std::process::ExitCode;
use std::time::Duration;

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// The table to copy again, as `schema.table`; without it, progress is shown.
    pub table: Option<String>,
    /// Keep showing progress until every table is done.
    #[arg(long)]
    pub watch: bool,
    /// Print progress as JSON.
    #[arg(long)]
    pub json: bool,
    /// With a table: first delete its BigQuery tables (the mirror or log and its staging
    /// table), so that the copy recreates them, e.g. after the table's key changed.
    #[arg(long, requires = "table")]
    pub recreate: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    /// With `--recreate`: the protection of columns (`PG2BQ_PROTECT` and its key) the table
    /// is copied with, recorded as the stream's.
    #[command(flatten)]
    pub protect: ProtectArgs,
}

/// Runs `pg2bq backfill`.
pub async fn run_backfill(args: BackfillArgs) -> Result<ExitCode> {
    let source = connect_sql(&args.source, "pg2bq-backfill").await?;
    let store = state(&args.stream);
    let Some(name) = args.table.clone() else {
        return show_backfill(&source, &store, &args).await;
    };
    let (schema, table) = name.split_once('.').ok_or_else(|| {
        CliError::Config(format!("'{name}' is not schema.table, e.g. public.orders"))
    })?;
    let table = TableId {
        schema: schema.to_owned(),
        table: table.to_owned(),
    };
    if args.recreate {
        let protection = args.protect.resolve().await?;
        let described = Catalog::new()
            .describe(&source, std::slice::from_ref(&table))
            .await?;
        let columns = described.first().map(|t| t.column_specs()).ok_or_else(|| {
            CliError::Config(format!("{name} is not a table of the source database"))
        })?;
        let recorded = RecordedProtection {
            tables: [(
                table.to_string(),
                protection.describe_table(&table, &columns),
            )]
            .into(),
        };
        store.record_protection(&source, &recorded).await?;
        let rest = pg2bq_cli::target::client(&args.target)?;
        let target = pg2bq_cli::target::layout(&args.target)?.target(&table);
        for bigquery_table in [target.change_table(), target] {
            rest.delete_table(&bigquery_table)
                .await
                .map_err(CliError::bigquery(format!(
                    "deleting {}.{}",
                    bigquery_table.dataset, bigquery_table.table
                )))?;
            println!(
                "deleted {}.{}",
                bigquery_table.dataset, bigquery_table.table
            );
        }
    }
    if !store.reset_backfill(&source, &table).await? {
        return Err(CliError::Config(format!(
            "{name} has no backfill record for slot '{}': is it in the stream's publication, and has capture started?",
            args.stream.slot
        )));
    }
    println!(
        "{name}: backfill scheduled; capture copies it again from a new snapshot at its next refresh"
    );
    Ok(ExitCode::SUCCESS)
}

async fn show_backfill(
    source: &tokio_postgres::Client,
    store: &StateStore,
    args: &BackfillArgs,
) -> Result<ExitCode> {
    loop {
        let progress = backfill_status::read(source, store).await?;
        let done = progress.iter().all(|p| p.finished);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&progress).expect("progress serialises")
            );
        } else {
            if args.watch {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", backfill_status::render(&progress));
        }
        if !args.watch || done {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
