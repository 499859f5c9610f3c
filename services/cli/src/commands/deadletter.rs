//! `pg2bq deadletter list|replay`: the batches Pub/Sub dead-lettered, and publishing them again.

use clap::Subcommand;
use pg2bq_cli::deadletter::{self, DeadLettered, Filter};
use pg2bq_cli::error::Result;
use pg2bq_cli::pubsub::{Publisher, Subscriber};
use pg2bq_core::config::PubSubArgs;
use std::process::ExitCode;
use std::time::Duration;

// The arguments (a doc comment here would replace the subcommand's help text).
#[derive(Debug, clap::Args)]
pub struct DeadLetterArgs {
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

/// What to do with the dead-letter subscription.
#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// The dead-lettered batches: table, sequence numbers, changes, why, when they were
    /// published and dead-lettered, and claim checks. They stay in the subscription
    /// unless `--acknowledge`.
    List {
        #[command(flatten)]
        common: Common,
        /// Remove the listed messages from the subscription, for good: for batches that will
        /// not be replayed (their tables copied again with `pg2bq backfill <table>` instead).
        #[arg(long)]
        acknowledge: bool,
    },
    /// Publish the dead-lettered batches to the stream's topic again, once the cause is fixed,
    /// with their attributes (claim checks keep their Cloud Storage object); each is
    /// acknowledged on the dead-letter subscription only after Pub/Sub accepted its publish.
    /// Safe to repeat: the newest change per key wins.
    Replay {
        #[command(flatten)]
        common: Common,
    },
}

/// Settings of both actions.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub pubsub: PubSubArgs,
    /// The dead-letter topic's pull subscription, a name in PG2BQ_PROJECT or a whole
    /// `projects/<p>/subscriptions/<s>` path (default: `<PG2BQ_TOPIC>-dead-letter-pull`, the
    /// name Terraform gives it).
    #[arg(long, env = "PG2BQ_DEADLETTER_SUBSCRIPTION")]
    pub subscription: Option<String>,
    /// Only the batches of this source table (`schema.table`).
    #[arg(long)]
    pub table: Option<String>,
    /// At most this many messages.
    #[arg(long)]
    pub limit: Option<usize>,
    /// How long pulls must find nothing before the subscription counts as drained (Pub/Sub may
    /// answer a pull with nothing while messages wait).
    #[arg(long, default_value_t = 5)]
    pub wait_secs: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Common {
    fn subscriber(&self) -> Result<Subscriber> {
        let name = self
            .subscription
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| deadletter::default_subscription(&self.pubsub.topic));
        Subscriber::new(&self.pubsub, &name)
    }

    fn filter(&self) -> Filter {
        Filter {
            table: self.table.clone(),
            limit: self.limit,
            skip_run: None,
        }
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_secs.max(1))
    }
}

/// Runs `pg2bq deadletter`.
pub async fn run_deadletter(args: DeadLetterArgs) -> Result<ExitCode> {
    match args.action {
        DeadLetterAction::List {
            common,
            acknowledge,
        } => {
            let subscriber = common.subscriber()?;
            let listing =
                deadletter::list(&subscriber, &common.filter(), common.wait(), acknowledge).await?;
            if common.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&listing).expect("the listing serialises")
                );
                return Ok(ExitCode::SUCCESS);
            }
            if listing.messages.is_empty() {
                println!(
                    "{} holds no dead-lettered batch{}{}",
                    subscriber.path(),
                    table_clause(&common.table),
                    others_clause(listing.others)
                );
                return Ok(ExitCode::SUCCESS);
            }
            for message in &listing.messages {
                println!("{}", describe(message));
            }
            println!(
                "{}{}",
                totals(&listing.messages),
                others_clause(listing.others)
            );
            if acknowledge {
                println!(
                    "acknowledged them: they are gone from {}; their changes reach BigQuery only \
                     by copying their tables again (`pg2bq backfill <schema.table>`)",
                    subscriber.path()
                );
            } else {
                println!(
                    "they wait in {}. Pub/Sub keeps no answer of the writer: its \"push refused\" \
                     log lines at those times give the reason (fields kind and error). Fix it, \
                     then `pg2bq deadletter replay`",
                    subscriber.path()
                );
            }
        }
        DeadLetterAction::Replay { common } => {
            let subscriber = common.subscriber()?;
            let publisher = Publisher::new(&common.pubsub)?;
            let replay =
                deadletter::replay(&subscriber, &publisher, &common.filter(), common.wait())
                    .await?;
            if common.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&replay).expect("the replay serialises")
                );
                return Ok(ExitCode::SUCCESS);
            }
            for message in &replay.replayed {
                println!("{}", describe(message));
            }
            if replay.replayed.is_empty() {
                println!(
                    "nothing to replay: {} holds no dead-lettered batch{}{}",
                    subscriber.path(),
                    table_clause(&common.table),
                    others_clause(replay.others)
                );
            } else {
                println!(
                    "replayed {} to {} and acknowledged them on {}{}; the writer writes them \
                     like any batch (the newest change per key wins). A batch dead-lettered again \
                     comes back with replayed=1 or more: its cause is not fixed",
                    totals(&replay.replayed),
                    common.pubsub.topic_path(),
                    subscriber.path(),
                    others_clause(replay.others)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table_clause(table: &Option<String>) -> String {
    table
        .as_deref()
        .map(|t| format!(" of {t}"))
        .unwrap_or_default()
}

fn others_clause(others: usize) -> String {
    match others {
        0 => String::new(),
        n => format!(" ({n} other messages left there)"),
    }
}

/// One line per message.
fn describe(m: &DeadLettered) -> String {
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    let attempts = m
        .delivery_attempts
        .map(|c| format!("{c} delivery attempts "))
        .unwrap_or_default();
    let mut line = format!(
        "{}  seq {} .. {}  {} changes  {attempts}from {}  published {}  dead-lettered {}  \
         message {}",
        m.table.as_deref().unwrap_or("(no table attribute)"),
        or_unknown(&m.first_seq),
        or_unknown(&m.last_seq),
        m.changes.map_or_else(|| "?".to_owned(), |c| c.to_string()),
        or_unknown(&m.source_subscription),
        or_unknown(&m.published),
        m.dead_lettered,
        m.message_id,
    );
    if let Some(error) = &m.error {
        line.push_str(&format!("\n    why: {error}"));
    }
    if let Some(claim) = &m.claim {
        line.push_str(&format!("  claim check {claim}"));
    }
    if m.replayed > 0 {
        line.push_str(&format!("  replayed {} times before", m.replayed));
    }
    line
}

/// `N messages (C changes) of tables a, b`.
fn totals(messages: &[DeadLettered]) -> String {
    let changes: u64 = messages.iter().filter_map(|m| m.changes).sum();
    let mut tables: Vec<&str> = messages
        .iter()
        .map(|m| m.table.as_deref().unwrap_or("(no table attribute)"))
        .collect();
    tables.sort_unstable();
    tables.dedup();
    format!(
        "{} messages ({changes} changes) of {}",
        messages.len(),
        tables.join(", ")
    )
}
