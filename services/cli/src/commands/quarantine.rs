//! `pg2bq quarantine list|retry`: the changes that could not be written, and sending them again.

use clap::Subcommand;
use pg2bq_cli::error::Result;
use pg2bq_cli::pubsub::Publisher;
use pg2bq_cli::quarantine::{self, Listed};
use pg2bq_core::config::{PubSubArgs, TargetArgs};
use std::process::ExitCode;

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub action: QuarantineAction,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only the changes of this source table (`schema.table`).
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// Print JSON instead of text (list).
    #[arg(long, global = true)]
    pub json: bool,
}

/// What to do with the quarantine.
#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// The changes waiting in the quarantine, per table, with the reason of each.
    List,
    /// Publish the quarantined changes to the stream's topic again, once their cause is fixed:
    /// the writer writes them (the newest change per key still wins) and marks them resolved;
    /// a change that still cannot be written is quarantined again with its reason.
    Retry {
        #[command(flatten)]
        pubsub: PubSubArgs,
    },
}

/// Runs `pg2bq quarantine`.
pub async fn run_quarantine(args: QuarantineArgs) -> Result<ExitCode> {
    let rest = pg2bq_cli::target::client(&args.target)?;
    let layout = pg2bq_cli::target::layout(&args.target)?;
    match &args.action {
        QuarantineAction::List => {
            let open = quarantine::open(&rest, &layout, args.table.as_deref()).await?;
            let listed: Vec<Listed> = open
                .into_iter()
                .map(|(dataset, c)| Listed {
                    dataset,
                    table: c.source_table,
                    seq: c.seq,
                    error: c.error,
                })
                .collect();
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&listed).expect("the list serialises")
                );
            } else if listed.is_empty() {
                println!("the quarantine is empty: every change was written");
            } else {
                for change in &listed {
                    println!("{}  {}  {}", change.table, change.seq, change.error);
                }
                println!(
                    "{} changes wait in the quarantine; fix their cause, then `pg2bq quarantine retry`",
                    listed.len()
                );
            }
        }
        QuarantineAction::Retry { pubsub } => {
            let publisher = Publisher::new(pubsub)?;
            let (changes, messages) =
                quarantine::retry(&rest, &layout, &publisher, args.table.as_deref()).await?;
            println!(
                "published {changes} quarantined changes again in {messages} messages to {}; \
                 see `pg2bq quarantine list` once the writer has had them",
                pubsub.topic
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
