//! The `pg2bq` operator CLI.
//!
//! Exit codes: 0 success; 1 validation found differences; 2 an error stopped the command.

mod validate_command;

use clap::{Parser, Subcommand};
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_cli::error::{CliError, Result};
use pg2bq_cli::{backfill_status, connection, discover, profile, seed, stream};
use pg2bq_core::config::{SelectionArgs, SourceArgs, TargetArgs};
use pg2bq_core::pg_connect::connect_sql;
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
            Command::Profile(_) | Command::Init(_) => None,
        }
    }
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
        #[command(flatten)]
        tables: SelectionArgs,
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
    /// The stream's publication.
    #[arg(
        long,
        env = "PG2BQ_PUBLICATION",
        default_value = "pg2bq",
        global = true
    )]
    publication: String,
    /// Print JSON instead of text (status).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum StreamAction {
    /// Record a new stream, not started: checks the source, creates the state schema and the
    /// publication of the selected tables. Capture waits until `start`; the slot is created then.
    Create {
        #[command(flatten)]
        tables: SelectionArgs,
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
    /// paused, failed), rows, changes, freshness and last error. Freshness needs the target
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
    let source = connect_sql(&args.source, "pg2bq-backfill").await?;
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
    let source = connect_sql(&args.source, "pg2bq-stream").await?;
    match args.action {
        StreamAction::Create { ref tables, force } => {
            return create_stream(&source, &args, tables, force).await;
        }
        StreamAction::Pause | StreamAction::Resume | StreamAction::Start => {
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
        } => {
            let deleted = stream::delete(
                &source,
                &args.state_schema,
                &args.slot,
                &args.publication,
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
        StreamAction::Status { ref target } => {
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
                &args.state_schema,
                &args.slot,
                &args.publication,
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
    args: &StreamArgs,
    tables: &SelectionArgs,
    force: bool,
) -> Result<ExitCode> {
    let selection = tables
        .selection()
        .map_err(|e| CliError::Config(e.to_string()))?;
    let mut checks = profile::server_checks(&profile::server_facts(source).await?);
    checks.extend(profile::table_checks(
        &profile::table_facts(source, &selection).await?,
    ));
    let failed = checks.iter().any(|c| c.outcome == profile::Outcome::Fail);
    if failed && !force {
        eprint!("{}", profile::render(&checks));
        return Err(CliError::Config(
            "the source is not ready for a stream (see the failed checks and their fixes above);              fix them, or create the stream anyway with --force"
                .to_owned(),
        ));
    }
    let created = stream::create(
        source,
        &args.state_schema,
        &args.slot,
        &args.publication,
        &selection,
    )
    .await?;
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
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_profile_test(which: ProfileWhich) -> Result<ExitCode> {
    let (checks, json) = match which {
        ProfileWhich::Source {
            source,
            tables,
            json,
        } => (source_checks(&source, &tables).await?, json),
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

async fn source_checks(source: &SourceArgs, tables: &SelectionArgs) -> Result<Vec<profile::Check>> {
    let selection = tables
        .selection()
        .map_err(|e| CliError::Config(e.to_string()))?;
    let sql = match connect_sql(source, "pg2bq-profile-test").await {
        Ok(sql) => sql,
        Err(e) => return Ok(vec![connection::connection_failed(&e)]),
    };
    let mut checks = vec![
        profile::Check {
            name: "connection".into(),
            outcome: profile::Outcome::Pass,
            detail: source.describe(),
            fix: None,
        },
        connection::encryption_check(source, &connection::session_tls(&sql).await?),
    ];
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
    let sql = connect_sql(&args.source, "pg2bq-discover").await?;
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
