//! `pg2bq discover`: the source's tables as pg2bq replicates them.

use pg2bq_cli::discover;
use pg2bq_cli::error::{CliError, Result};
use pg2bq_core::config::{ColumnArgs, SourceArgs, StreamArgs};
use pg2bq_core::pg_connect::connect_sql;
use std::process::ExitCode;

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Tables to show: `schema.table` patterns (as for capture).
    #[arg(
        long,
        env = "PG2BQ_INCLUDE",
        default_value = "*",
        value_delimiter = ','
    )]
    pub include: Vec<String>,
    /// Partitioned tables as their root (`root`) or as their leaf partitions (`leaves`), as the
    /// stream replicates them (`PG2BQ_PARTITIONS`).
    #[arg(
        long,
        env = "PG2BQ_PARTITIONS",
        value_enum,
        default_value_t = pg2bq_core::selection::Partitions::Root
    )]
    pub partitions: pg2bq_core::selection::Partitions,
    /// The columns and rows replicated (excluded columns are shown as such).
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pg2bq discover`.
pub async fn run_discover(args: DiscoverArgs) -> Result<ExitCode> {
    let selection = pg2bq_core::selection::TableSelection::new(&args.include, Vec::<String>::new())
        .map_err(|e| CliError::Config(e.to_string()))?
        .with_columns(
            args.columns
                .rules()
                .map_err(|e| CliError::Config(e.to_string()))?,
        )
        .with_partitions(args.partitions);
    let sql = connect_sql(&args.source, "pg2bq-discover").await?;
    let tables = discover::discover(&sql, &selection, &args.stream.state_schema).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&tables).expect("tables serialise")
        );
    } else {
        print!("{}", discover::render(&tables));
    }
    Ok(ExitCode::SUCCESS)
}
