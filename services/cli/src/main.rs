//! The `pg2bq` operator CLI.
//!
//! Exit codes: 0 success; 1 validation found differences; 2 an error stopped the command.

mod validate_command;

use clap::{Parser, Subcommand};
use pg2bq_cli::error::{CliError, Result};
use pg2bq_cli::{backfill_status, discover, profile, seed, stream};
use pg2bq_core::config::{SourceArgs, TargetArgs};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_writer::bigquery::auth::TokenSource;
use pg2bq_writer::bigquery::rest::RestClient;
use std::process::ExitCode;
use std::time::Duration;
use validate_command::{ValidateArgs, run_validate};

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
    Stream(StreamArgs),
    /// Connection profiles.
    Profile(ProfileArgs),
    /// Schemas, tables, columns, types, keys and row estimates, with the BigQuery type of each
    /// column.
    Discover(DiscoverArgs),
    /// The sample shop of `make demo` (schema `shop`), its live changes, a steady workload.
    Seed(SeedArgs),
}

#[derive(Debug, clap::Args)]
struct SeedArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Create the `shop` schema and its tables.
    #[arg(long)]
    schema: bool,
    /// Load the sample rows.
    #[arg(long)]
    rows: bool,
    /// Make the demo's scripted changes (inserts, updates, key changes, deletes).
    #[arg(long)]
    live_changes: bool,
    /// Then run a steady workload for this many seconds.
    #[arg(long, default_value_t = 0)]
    workload_secs: u64,
    /// Transactions a second of the workload.
    #[arg(long, default_value_t = 10)]
    workload_rate: u32,
}

#[derive(Debug, clap::Args)]
struct DiscoverArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Tables to show: `schema.table` patterns (as for capture).
    #[arg(
        long,
        env = "PG2BQ_INCLUDE",
        default_value = "*",
        value_delimiter = ','
    )]
    include: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ProfileArgs {
    #[command(subcommand)]
    action: ProfileAction,
}

#[derive(Debug, Subcommand)]
enum ProfileAction {
    /// Check a profile: connectivity and prerequisites, one line per check with the fix for each
    /// failure. Exits 1 if a check fails.
    Test {
        #[command(subcommand)]
        which: ProfileWhich,
    },
}

#[derive(Debug, Subcommand)]
enum ProfileWhich {
    /// The source PostgreSQL: wal_level, REPLICATION, privileges, slots and senders, keys.
    Source {
        #[command(flatten)]
        source: SourceArgs,
        /// Tables to replicate (as for capture).
        #[arg(
            long,
            env = "PG2BQ_INCLUDE",
            default_value = "public.*",
            value_delimiter = ','
        )]
        include: Vec<String>,
        /// Tables not to replicate.
        #[arg(long, env = "PG2BQ_EXCLUDE", default_value = "", value_delimiter = ',')]
        exclude: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The BigQuery target: access to the project's datasets.
    Target {
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct StreamArgs {
    #[command(subcommand)]
    action: StreamAction,
    #[command(flatten)]
    source: SourceArgs,
    /// The slot of the stream.
    #[arg(long, env = "PG2BQ_SLOT", default_value = "pg2bq", global = true)]
    slot: String,
    /// pg2bq's state schema.
    #[arg(
        long,
        env = "PG2BQ_STATE_SCHEMA",
        default_value = "pg2bq",
        global = true
    )]
    state_schema: String,
    /// Print JSON instead of text (status).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum StreamAction {
    /// Stop reading changes: the slot keeps them (and its WAL) until `resume`.
    Pause,
    /// Continue reading changes from where the stream paused.
    Resume,
    /// The stream's state, slot lag and each table's phase (backfilling, streaming, paused).
    Status,
    /// Forget the stream (stop capture first). The slot and the publication stay unless asked:
    /// a kept slot goes on holding WAL.
    Delete {
        /// Also drop the replication slot (its position is lost for good).
        #[arg(long)]
        drop_slot: bool,
        /// Also drop the publication.
        #[arg(long)]
        drop_publication: bool,
        /// The stream's publication.
        #[arg(long, env = "PG2BQ_PUBLICATION", default_value = "pg2bq")]
        publication: String,
    },
}

#[derive(Debug, clap::Args)]
struct BackfillArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The table to copy again, as `schema.table`; without it, progress is shown.
    table: Option<String>,
    /// Keep showing progress until every table is done.
    #[arg(long)]
    watch: bool,
    /// Print progress as JSON.
    #[arg(long)]
    json: bool,
    /// The slot of the stream.
    #[arg(long, env = "PG2BQ_SLOT", default_value = "pg2bq")]
    slot: String,
    /// pg2bq's state schema.
    #[arg(long, env = "PG2BQ_STATE_SCHEMA", default_value = "pg2bq")]
    state_schema: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    pg2bq_core::logging::init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Validate(args) => run_validate(args).await,
        Command::Backfill(args) => run_backfill(args).await,
        Command::Stream(args) => run_stream(args).await,
        Command::Discover(args) => run_discover(args).await,
        Command::Seed(args) => run_seed(args).await,
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

async fn run_backfill(args: BackfillArgs) -> Result<ExitCode> {
    let source = connect_sql(&args.source, "pg2bq-backfill")
        .await
        .map_err(CliError::postgres(format!(
            "connecting to {}",
            args.source.describe()
        )))?;
    let Some(name) = args.table.clone() else {
        return show_backfill(&source, &args).await;
    };
    let (schema, table) = name.split_once('.').ok_or_else(|| {
        CliError::Config(format!("'{name}' is not schema.table, e.g. public.orders"))
    })?;
    let state = pg2bq_core::pg_connect::quote_ident(&args.state_schema);
    let mut deleted = 0;
    for relation in ["backfill_ranges", "backfill_tables"] {
        deleted += source
            .execute(
                &format!("DELETE FROM {state}.{relation} WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3"),
                &[&args.slot, &schema, &table],
            )
            .await
            .map_err(CliError::postgres(format!("resetting the backfill of {name}")))?;
    }
    if deleted == 0 {
        return Err(CliError::Config(format!(
            "{name} has no backfill record for slot '{}': is it in the stream's publication, and has capture started?",
            args.slot
        )));
    }
    println!(
        "{name}: backfill scheduled; capture copies it again from a new snapshot at its next refresh"
    );
    Ok(ExitCode::SUCCESS)
}

async fn show_backfill(source: &tokio_postgres::Client, args: &BackfillArgs) -> Result<ExitCode> {
    loop {
        let progress = backfill_status::read(source, &args.state_schema, &args.slot).await?;
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

async fn run_stream(args: StreamArgs) -> Result<ExitCode> {
    let source = connect_sql(&args.source, "pg2bq-stream")
        .await
        .map_err(CliError::postgres(format!(
            "connecting to {}",
            args.source.describe()
        )))?;
    match args.action {
        StreamAction::Pause | StreamAction::Resume => {
            let state = if matches!(args.action, StreamAction::Pause) {
                "paused"
            } else {
                "running"
            };
            stream::set_state(&source, &args.state_schema, &args.slot, state).await?;
            println!(
                "stream on slot {}: {state} (capture follows within a second)",
                args.slot
            );
        }
        StreamAction::Delete {
            drop_slot,
            drop_publication,
            ref publication,
        } => {
            let deleted = stream::delete(
                &source,
                &args.state_schema,
                &args.slot,
                publication,
                drop_slot,
                drop_publication,
            )
            .await?;
            if deleted.slot_kept {
                println!(
                    "warning: slot {} still exists and holds WAL: drop it with --drop-slot, or start capture again",
                    args.slot
                );
            }
            println!(
                "stream on slot {} deleted (slot {}, publication {})",
                args.slot,
                if deleted.slot_dropped {
                    "dropped"
                } else {
                    "kept"
                },
                if deleted.publication_dropped {
                    "dropped"
                } else {
                    "kept"
                }
            );
        }
        StreamAction::Status => {
            let status = stream::status(&source, &args.state_schema, &args.slot).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serialises")
                );
            } else {
                print!("{}", stream::render(&status));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_profile_test(which: ProfileWhich) -> Result<ExitCode> {
    let (checks, json) = match which {
        ProfileWhich::Source {
            source,
            include,
            exclude,
            json,
        } => (source_checks(&source, &include, &exclude).await?, json),
        ProfileWhich::Target { target, json } => (target_checks(&target).await, json),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).expect("checks serialise")
        );
    } else {
        print!("{}", profile::render(&checks));
    }
    let failed = checks.iter().any(|c| c.outcome == profile::Outcome::Fail);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn source_checks(
    source: &SourceArgs,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<profile::Check>> {
    let selection = pg2bq_core::selection::TableSelection::new(include, exclude)
        .map_err(|e| CliError::Config(e.to_string()))?;
    let sql = match connect_sql(source, "pg2bq-profile-test").await {
        Ok(sql) => sql,
        Err(e) => {
            return Ok(vec![profile::Check {
                name: "connection".into(),
                outcome: profile::Outcome::Fail,
                detail: format!("cannot connect to {}: {e}", source.describe()),
                fix: Some("check PG2BQ_PG_HOST, PG2BQ_PG_PORT, PG2BQ_PG_USER, PG2BQ_PG_DATABASE and PG2BQ_PG_PASSWORD, and that the server accepts this client (pg_hba.conf, firewall)".into()),
            }]);
        }
    };
    let mut checks = vec![profile::Check {
        name: "connection".into(),
        outcome: profile::Outcome::Pass,
        detail: source.describe(),
        fix: None,
    }];
    checks.extend(profile::server_checks(&profile::server_facts(&sql).await?));
    checks.extend(profile::table_checks(
        &profile::table_facts(&sql, &selection).await?,
    ));
    Ok(checks)
}

async fn target_checks(target: &TargetArgs) -> Vec<profile::Check> {
    let listed = match TokenSource::for_target(target) {
        Ok(tokens) => match RestClient::new(
            &target.rest_endpoint,
            &target.project,
            &target.location,
            tokens,
        ) {
            Ok(bigquery) => bigquery.list_datasets().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    vec![match listed {
        Ok(datasets) => profile::Check {
            name: "BigQuery access".into(),
            outcome: profile::Outcome::Pass,
            detail: format!("project {}: {} datasets visible", target.project, datasets.len()),
            fix: None,
        },
        Err(e) => profile::Check {
            name: "BigQuery access".into(),
            outcome: profile::Outcome::Fail,
            detail: e,
            fix: Some("grant the writer's service account roles/bigquery.dataEditor and roles/bigquery.jobUser on the project".into()),
        },
    }]
}

async fn run_discover(args: DiscoverArgs) -> Result<ExitCode> {
    let selection = pg2bq_core::selection::TableSelection::new(&args.include, Vec::<String>::new())
        .map_err(|e| CliError::Config(e.to_string()))?;
    let sql = connect_sql(&args.source, "pg2bq-discover")
        .await
        .map_err(CliError::postgres(format!(
            "connecting to {}",
            args.source.describe()
        )))?;
    let tables = discover::discover(&sql, &selection).await?;
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

async fn run_seed(args: SeedArgs) -> Result<ExitCode> {
    let sql = connect_sql(&args.source, "pg2bq-seed")
        .await
        .map_err(CliError::postgres(format!(
            "connecting to {}",
            args.source.describe()
        )))?;
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
