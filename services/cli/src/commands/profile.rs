//! `pg2bq profile test source|target`: one line per check, with the fix of each failure.

use clap::Subcommand;
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_cli::error::{CliError, Result};
use pg2bq_cli::{connection, profile};
use pg2bq_core::config::{SelectionArgs, SourceArgs, StreamArgs, TargetArgs};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_source::catalog::Catalog;
use pg2bq_source::server::{FailoverFacts, ServerRole};
use std::process::ExitCode;

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub action: ProfileAction,
}

#[derive(Debug, Subcommand)]
pub enum ProfileAction {
    /// Check a profile: connectivity and prerequisites, one line per check with the fix for each
    /// failure. Exits 1 if a check fails.
    Test {
        #[command(subcommand)]
        which: ProfileWhich,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileWhich {
    /// The source PostgreSQL: wal_level, REPLICATION, privileges, slots and senders, keys, and
    /// the BigQuery names of the selected tables and columns (two that land on one name fail,
    /// with the rename that separates them).
    Source {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        tables: SelectionArgs,
        #[command(flatten)]
        stream: StreamArgs,
        /// Where the tables land in BigQuery (the dataset settings and the rename map), for the
        /// check of their BigQuery names.
        #[command(flatten)]
        target: Box<TargetArgs>,
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

/// Runs `pg2bq profile test`.
pub async fn run_profile_test(which: ProfileWhich) -> Result<ExitCode> {
    let (checks, json) = match which {
        ProfileWhich::Source {
            source,
            tables,
            stream,
            target,
            json,
        } => (
            source_checks(&source, &tables, &stream, &target).await?,
            json,
        ),
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
    tables: &SelectionArgs,
    stream: &StreamArgs,
    target: &TargetArgs,
) -> Result<Vec<profile::Check>> {
    let selection = tables
        .selection()
        .map_err(|e| CliError::Config(e.to_string()))?;
    let layout = pg2bq_cli::target::layout(target)?;
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
    // A standby cannot be a source: the other checks would only add noise.
    let role = ServerRole::read(&sql).await?;
    if let Some(problem) = role.standby_problem() {
        checks.push(profile::standby_check(&problem));
        return Ok(checks);
    }
    checks.extend(profile::server_checks(&profile::server_facts(&sql).await?));
    checks.push(profile::failover_check(
        &FailoverFacts::read(&sql, &stream.slot).await?,
        &stream.slot,
    ));
    let selected = Catalog::new()
        .selected_tables(&sql, &selection, &stream.state_schema)
        .await?;
    checks.extend(profile::table_checks(&selected));
    checks.extend(profile::generated_checks(&selected, role.version_num));
    let ids: Vec<_> = selected.iter().map(|t| t.id.clone()).collect();
    checks.extend(profile::skipped_checks(
        &pg2bq_source::catalog::unpublishable(&sql, &ids).await?,
    ));
    checks.extend(profile::row_security_checks(&sql, &selected).await?);
    checks.extend(profile::money_checks(source, &selected).await);
    checks.extend(profile::name_checks(
        &selected,
        &layout,
        &stream.state_schema,
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
