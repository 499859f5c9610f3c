//! `pg2bq seed`: the sample shop (schema and rows) that `make demo` uses, its scripted live
//! changes, and an optional steady workload of inserts, updates and deletes.

use crate::error::{CliError, Result};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The shop's schema (`infra/demo/schema.sql`).
pub const SCHEMA: &str = include_str!("../../../infra/demo/schema.sql");
/// The shop's rows (`infra/demo/seed.sql`).
pub const ROWS: &str = include_str!("../../../infra/demo/seed.sql");
/// The demo's scripted live changes (`infra/demo/live-changes.sql`).
pub const LIVE_CHANGES: &str = include_str!("../../../infra/demo/live-changes.sql");

/// Runs one of the SQL scripts.
pub async fn run_script(sql: &Client, name: &str, script: &str) -> Result<()> {
    sql.batch_execute(script)
        .await
        .map_err(CliError::postgres(format!("running the {name} script")))
}

/// Counts of what a workload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkloadCounts {
    /// Transactions committed.
    pub transactions: u64,
    /// Orders inserted (with their lines).
    pub inserted: u64,
    /// Orders updated.
    pub updated: u64,
    /// Orders deleted.
    pub deleted: u64,
}

/// Commits about `rate` transactions a second for `duration`: each inserts an order with a line,
/// updates an order's status and every tenth deletes an order.
pub async fn workload(sql: &Client, rate: u32, duration: Duration) -> Result<WorkloadCounts> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now();
    let mut counts = WorkloadCounts::default();
    let base: i32 = sql
        .query_one(
            "SELECT COALESCE(max(order_id), 0) + 1 FROM shop.orders",
            &[],
        )
        .await
        .map_err(CliError::postgres(
            "reading the shop (run pg2bq seed first)",
        ))?
        .get(0);
    let mut tick = tokio::time::interval(interval);
    while started.elapsed() < duration {
        tick.tick().await;
        let id = base + counts.transactions as i32;
        let mut statements = format!(
            "BEGIN; \
             INSERT INTO shop.orders (order_id, customer_id, total, placed_at) VALUES ({id}, 1 + {id} % 200, 3.37, now()); \
             INSERT INTO shop.order_lines VALUES ({id}, 1, 'SKU-0001', 1, 3.37); \
             UPDATE shop.orders SET status = 'paid' WHERE order_id = {id} - 1;"
        );
        counts.inserted += 1;
        counts.updated += 1;
        if counts.transactions % 10 == 9 {
            statements.push_str(&format!(
                " DELETE FROM shop.orders WHERE order_id = {id} - 5;"
            ));
            counts.deleted += 1;
        }
        statements.push_str(" COMMIT;");
        sql.batch_execute(&statements)
            .await
            .map_err(CliError::postgres("running the workload"))?;
        counts.transactions += 1;
    }
    Ok(counts)
}
