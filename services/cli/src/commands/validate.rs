//! `pg2bq validate`: its arguments and how the binary runs it (part of the `pg2bq` binary).

use pg2bq_cli::error::Result;
use pg2bq_cli::report;
use pg2bq_cli::validate::{Mode, Options, TableReport, freshness, validate_with};
use pg2bq_core::config::{ColumnArgs, SourceArgs, StreamArgs, TargetArgs};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::protect::ProtectArgs;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    target: TargetArgs,
    /// The stream: the publication whose tables are compared, and the state schema, which holds
    /// the freshness probe table.
    #[command(flatten)]
    stream: StreamArgs,
    /// The columns and rows replicated (excluded columns are not compared; only the rows of a
    /// row filter are).
    #[command(flatten)]
    columns: ColumnArgs,
    /// The columns capture protects, and the key: protected columns are compared protected.
    #[command(flatten)]
    protect: ProtectArgs,
    /// How tables are compared.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
    /// The most rows compared in full: the limit of `auto`, and of listing the rows behind
    /// differing checksums.
    #[arg(long, default_value_t = 100_000)]
    full_compare_max_rows: u64,
    /// Compare only this percentage of each table's keys (0.01 to 100), chosen by a hash of
    /// the key alike on both sides, so counts and checksums of the sample are comparable.
    #[arg(long, value_parser = parse_percent)]
    sample_percent: Option<f64>,
    /// Also measure end-to-end freshness: update a probe row in the source and time its arrival
    /// in BigQuery. The first probe creates `<state schema>.freshness_probe` and adds it to the
    /// publication (capture keeps it there); that needs the rights capture has.
    #[arg(long)]
    freshness: bool,
    /// Only measure freshness; compare no table.
    #[arg(long)]
    freshness_only: bool,
    /// Give up on the freshness probe after this many seconds (exit 2).
    #[arg(long, default_value_t = 120)]
    freshness_timeout_secs: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep comparing for up to this many seconds until every table matches.
    #[arg(long, default_value_t = 0)]
    wait_secs: u64,
}

/// A percentage from 0.01 to 100.
fn parse_percent(text: &str) -> std::result::Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if (0.01..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0.01 and 100"))
    }
}

/// Runs `pg2bq validate`: exit 0 when every table matches, 1 on a difference.
pub async fn run_validate(args: ValidateArgs) -> Result<ExitCode> {
    let source = connect_sql(&args.source, "pg2bq-validate").await?;
    let bigquery = pg2bq_cli::target::client(&args.target)?;
    let layout = pg2bq_cli::target::layout(&args.target)?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let freshness = if args.freshness || args.freshness_only {
        if progress {
            eprint!("measuring freshness…");
        }
        let measured = freshness::probe(
            &source,
            &bigquery,
            &layout,
            &args.stream,
            Duration::from_secs(args.freshness_timeout_secs),
        )
        .await;
        if progress {
            eprint!("\r\x1b[K");
        }
        Some(measured?)
    } else {
        None
    };
    let options = Options {
        mode: args.mode,
        full_compare_max_rows: args.full_compare_max_rows,
        sample_percent: args.sample_percent,
        state_schema: args.stream.state_schema.clone(),
        progress,
        columns: args.columns.rules()?,
        protection: args.protect.resolve().await?,
    };
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let reports = loop {
        if args.freshness_only {
            break Vec::new();
        }
        let reports = validate_with(
            &source,
            &args.stream.publication,
            &bigquery,
            &layout,
            &options,
        )
        .await?;
        if reports.iter().all(TableReport::matches) || Instant::now() >= deadline {
            break reports;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if args.json {
        println!("{}", report::render_json(&reports, freshness.as_ref()));
    } else {
        print!("{}", report::render_table(&reports, freshness.as_ref()));
    }
    Ok(if reports.iter().all(TableReport::matches) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_percentages_are_bounded() {
        assert_eq!(parse_percent("12.5"), Ok(12.5));
        assert_eq!(parse_percent("100"), Ok(100.0));
        assert!(parse_percent("0").is_err());
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("ten").is_err());
    }
}
