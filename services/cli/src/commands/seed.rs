//! `pg2bq seed`: the demo's sample shop, its live changes and a steady workload.

use pg2bq_cli::error::Result;
use pg2bq_cli::seed;
use pg2bq_core::config::SourceArgs;
use pg2bq_core::pg_connect::connect_sql;
use std::process::ExitCode;
use std::time::Duration;

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Create the `shop` schema and its tables.
    #[arg(long)]
    pub schema: bool,
    /// Load the sample rows.
    #[arg(long)]
    pub rows: bool,
    /// Make the demo's scripted changes (inserts, updates, key changes, deletes).
    #[arg(long)]
    pub live_changes: bool,
    /// Then run a steady workload for this many seconds.
    #[arg(long, default_value_t = 0)]
    pub workload_secs: u64,
    /// Transactions a second of the workload.
    #[arg(long, default_value_t = 10)]
    pub workload_rate: u32,
}

/// Runs `pg2bq seed`.
pub async fn run_seed(args: SeedArgs) -> Result<ExitCode> {
    let sql = connect_sql(&args.source, "pg2bq-seed").await?;
    let nothing_asked = !(args.schema || args.rows || args.live_changes) && args.workload_secs == 0;
    if args.schema || nothing_asked {
        seed::run_script(&sql, "schema", seed::SCHEMA).await?;
        println!("created schema shop");
    }
    if args.rows || nothing_asked {
        seed::run_script(&sql, "rows", seed::ROWS).await?;
        println!("loaded the sample rows");
    }
    if args.live_changes {
        seed::run_script(&sql, "live changes", seed::LIVE_CHANGES).await?;
        println!("made the live changes");
    }
    if args.workload_secs > 0 {
        let counts = seed::workload(
            &sql,
            args.workload_rate,
            Duration::from_secs(args.workload_secs),
        )
        .await?;
        println!(
            "workload: {} transactions ({} orders inserted, {} updated, {} deleted)",
            counts.transactions, counts.inserted, counts.updated, counts.deleted
        );
    }
    Ok(ExitCode::SUCCESS)
}
