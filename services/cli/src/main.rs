//! The `pg2bq` operator CLI.
//!
//! Exit codes: 0 success; 1 validation found differences; 2 an error stopped the command.

mod commands;

use clap::{Parser, Subcommand};
use commands::backfill::{BackfillArgs, run_backfill};
use commands::deadletter::{DeadLetterArgs, run_deadletter};
use commands::discover::{DiscoverArgs, run_discover};
use commands::profile::{ProfileAction, ProfileArgs, ProfileWhich, run_profile_test};
use commands::quarantine::{QuarantineArgs, run_quarantine};
use commands::seed::{SeedArgs, run_seed};
use commands::stream::{StreamCommand, run_stream};
use commands::validate::{ValidateArgs, run_validate};
use pg2bq_core::config::SourceArgs;
use std::process::ExitCode;

/// pg2bq: replicate PostgreSQL into BigQuery.
#[derive(Debug, Parser)]
#[command(name = "pg2bq", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare every table of the publication with its BigQuery mirror, and measure freshness.
    ///
    /// Per table: the mirror exists with every column, the row counts agree, and all columns
    /// agree, either row by row (`full`, naming the rows that differ) or by an order-independent
    /// checksum computed inside each database (`checksum`, nothing downloaded). Values are
    /// normalised identically on both sides. `--sample-percent` compares a deterministic share
    /// of the keys; `--freshness` times a probe change from the source to BigQuery.
    ///
    /// Exit codes: 0 every table matches; 1 a table differs; 2 an error stopped the command
    /// (including a freshness probe that did not arrive in time).
    Validate(ValidateArgs),
    /// Show backfill progress per table; with a table, copy its existing rows again (capture
    /// re-reads it from a new snapshot within PG2BQ_PUBLICATION_REFRESH_SECS, while changes keep
    /// streaming).
    Backfill(BackfillArgs),
    /// The stream's lifecycle and status.
    Stream(StreamCommand),
    /// Connection profiles.
    Profile(ProfileArgs),
    /// The changes that could not be written (kept in BigQuery with the reason), and sending
    /// them again once their cause is fixed.
    Quarantine(QuarantineArgs),
    /// The change batches Pub/Sub dead-lettered after the writer refused them on every delivery
    /// attempt (the dead-letter topic's subscription), and publishing them to the stream's topic
    /// again once their cause is fixed.
    Deadletter(DeadLetterArgs),
    /// Schemas, tables, columns, types, keys and row estimates, with the BigQuery type of each
    /// column.
    Discover(DiscoverArgs),
    /// The sample shop of `make demo` (schema `shop`), its live changes, a steady workload.
    Seed(SeedArgs),
    /// Write a commented example configuration file (every setting, its environment variable
    /// and its default).
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    /// Where to write it.
    #[arg(default_value = pg2bq_core::config_file::DEFAULT_FILE)]
    path: std::path::PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

impl Command {
    /// The source connection settings of the command, if it has any.
    fn source_mut(&mut self) -> Option<&mut SourceArgs> {
        match self {
            Command::Validate(a) => Some(&mut a.source),
            Command::Backfill(a) => Some(&mut a.source),
            Command::Stream(a) => Some(&mut a.source),
            Command::Discover(a) => Some(&mut a.source),
            Command::Seed(a) => Some(&mut a.source),
            Command::Profile(ProfileArgs {
                action:
                    ProfileAction::Test {
                        which: ProfileWhich::Source { source, .. },
                    },
            }) => Some(source),
            Command::Profile(_)
            | Command::Init(_)
            | Command::Quarantine(_)
            | Command::Deadletter(_) => None,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    pg2bq_core::logging::init_cli();
    let mut cli: Cli = pg2bq_core::config_file::parse_with_config();
    if let Some(source) = cli.command.source_mut()
        && let Err(e) = source.resolve_password().await
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let outcome = match cli.command {
        Command::Init(args) => pg2bq_cli::init::write_example(&args.path, args.force).map(|()| {
            println!(
                "wrote {}: edit it, then `pg2bq profile test source` and `pg2bq stream create`",
                args.path.display()
            );
            ExitCode::SUCCESS
        }),
        Command::Validate(args) => run_validate(args).await,
        Command::Backfill(args) => run_backfill(args).await,
        Command::Stream(args) => run_stream(args).await,
        Command::Discover(args) => run_discover(args).await,
        Command::Seed(args) => run_seed(args).await,
        Command::Quarantine(args) => run_quarantine(args).await,
        Command::Deadletter(args) => run_deadletter(args).await,
        Command::Profile(ProfileArgs {
            action: ProfileAction::Test { which },
        }) => run_profile_test(which).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
