//! `pg2bq stream status`: the stream's state and slot lag, and per table its phase, rows,
//! freshness and last error.
//!
//! Phase and rows come from capture's state schema (backfill progress and `table_activity`,
//! which capture writes every heartbeat). Freshness needs the target: it is how long the newest
//! change capture published for the table has been committed without being visible in BigQuery
//! (0 when BigQuery holds it), so an idle, caught-up table is fresh.

use crate::backfill_status;
use crate::error::{CliError, Result};
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::bq_naming::DatasetLayout;
use pg2bq_core::config::StreamArgs;
use pg2bq_core::wire::TableId;
use pg2bq_source::catalog::Catalog;
use pg2bq_source::state::activity::TableActivity;
use pg2bq_source::state::stream::DesiredState;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// What the stream of a slot is doing.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    /// The slot.
    pub slot: String,
    /// `created` (not started), `running` or `paused`, as set.
    pub desired_state: String,
    /// Whether a capture holds the slot now.
    pub capture_connected: bool,
    /// The slot's confirmed position.
    pub confirmed_lsn: Option<String>,
    /// WAL bytes the slot holds back.
    pub slot_lag_bytes: Option<i64>,
    /// Per table.
    pub tables: Vec<TableStatus>,
}

/// One table of the stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableStatus {
    /// `schema.table`.
    pub table: String,
    /// `created`, `backfilling`, `streaming`, `paused`, `failed` (an error since the last
    /// change published), `degraded` (changes wait in the quarantine) or `skipped` (not
    /// replicated: publishing it would make the application's UPDATE and DELETE fail; the
    /// error says why and the fix).
    pub phase: String,
    /// Rows copied by backfill.
    pub rows_backfilled: i64,
    /// Changes published since the stream started.
    pub changes_published: i64,
    /// Commit time of the newest change published (UTC).
    pub last_change_at: Option<String>,
    /// Milliseconds the newest published change has waited to be visible in BigQuery (0: it
    /// is); `None` without a target or before the first change.
    pub freshness_ms: Option<i64>,
    /// The last error capture met for the table, with its time.
    pub last_error: Option<String>,
    /// Changes of the table waiting in the writer's quarantine (they could not be written);
    /// `None` without a target.
    pub quarantined: Option<i64>,
    /// Why the oldest of them could not be written.
    pub quarantine_error: Option<String>,
}

/// Reads the status of the stream; with `bigquery`, also each table's freshness.
pub async fn status(
    sql: &Client,
    stream: &StreamArgs,
    bigquery: Option<(&RestClient, &DatasetLayout)>,
) -> Result<StreamStatus> {
    let state = crate::stream::state(stream);
    let overview = state.overview(sql).await?.ok_or_else(|| {
        CliError::Config(format!(
            "no stream uses slot '{}': create one with `pg2bq stream create`, or name the slot with --slot",
            stream.slot
        ))
    })?;
    let desired_state = overview.desired_state.as_str().to_owned();
    let activity: BTreeMap<String, TableActivity> = state
        .activity(sql)
        .await?
        .into_iter()
        .map(|(id, a)| (id.to_string(), a))
        .collect();
    let mut tables = Vec::new();
    if overview.desired_state == DesiredState::Created {
        for table in Catalog::new()
            .publication_tables(sql, &stream.publication)
            .await?
        {
            tables.push(TableStatus {
                table: table.id.to_string(),
                phase: "created".to_owned(),
                ..TableStatus::default()
            });
        }
    } else {
        for progress in backfill_status::read(sql, &state).await? {
            let seen = activity.get(&progress.table);
            tables.push(TableStatus {
                phase: phase(&desired_state, progress.finished, seen).to_owned(),
                rows_backfilled: progress.rows_copied,
                changes_published: seen.map_or(0, |a| a.changes),
                last_change_at: seen
                    .and_then(|a| a.last_commit_us)
                    .map(pg2bq_core::civil::format_timestamp_us),
                last_error: seen.and_then(|a| a.last_error.as_ref()).map(|(e, at)| {
                    format!("{} ({e})", pg2bq_core::civil::format_timestamp_us(*at))
                }),
                table: progress.table,
                freshness_ms: None,
                quarantined: None,
                quarantine_error: None,
            });
        }
    }
    for skipped in state.skipped(sql).await? {
        let name = skipped.table.to_string();
        tables.retain(|t| t.table != name);
        tables.push(TableStatus {
            table: name,
            phase: "skipped".to_owned(),
            last_error: Some(format!(
                "{} ({}); fix: {}",
                pg2bq_core::civil::format_timestamp_us(skipped.since_us),
                skipped.reason,
                skipped.fix
            )),
            ..TableStatus::default()
        });
    }
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    if let Some((client, layout)) = bigquery {
        let quarantine = crate::quarantine::summaries(client, layout).await?;
        for table in &mut tables {
            let open = quarantine.iter().find(|q| q.source_table == table.table);
            table.quarantined = Some(open.map_or(0, |q| q.open));
            if let Some(open) = open.filter(|q| q.open > 0) {
                table.quarantine_error = Some(open.first_error.clone());
                if table.phase != "failed" {
                    table.phase = "degraded".to_owned();
                }
            }
            if let Some(newest) = activity.get(&table.table).and_then(|a| a.last_commit_us) {
                table.freshness_ms = freshness_ms(client, layout, &table.table, newest).await?;
            }
        }
    }
    Ok(StreamStatus {
        slot: stream.slot.clone(),
        desired_state,
        capture_connected: overview.slot_active,
        confirmed_lsn: overview.confirmed_lsn,
        slot_lag_bytes: overview.slot_lag_bytes,
        tables,
    })
}

fn phase(desired_state: &str, backfilled: bool, activity: Option<&TableActivity>) -> &'static str {
    let failing = activity.is_some_and(|a| {
        a.last_error
            .as_ref()
            .is_some_and(|(_, at)| a.last_published_us.is_none_or(|p| p < *at))
    });
    match (desired_state, backfilled, failing) {
        (_, _, true) => "failed",
        ("paused", _, _) => "paused",
        (_, false, _) => "backfilling",
        _ => "streaming",
    }
}

/// How long the change committed at `newest_us` has been waiting to be visible in BigQuery:
/// 0 if BigQuery holds a change at least as new. The change table (staged merge) holds every
/// change, deletes included, so it is read when it exists; otherwise the table itself.
async fn freshness_ms(
    client: &RestClient,
    layout: &DatasetLayout,
    table: &str,
    newest_us: i64,
) -> Result<Option<i64>> {
    let Some((schema, name)) = table.split_once('.') else {
        return Ok(None);
    };
    let target = layout.target(&TableId {
        schema: schema.to_owned(),
        table: name.to_owned(),
    });
    let mut visible_us = None;
    for candidate in [target.change_table(), target] {
        let sql = format!(
            "SELECT CAST(UNIX_MICROS(MAX(`_pg2bq_commit_ts`)) AS STRING) FROM {}",
            candidate.quoted(client.project())
        );
        if let Ok(rows) = client.query(&sql).await {
            visible_us = rows
                .rows
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|v| v.parse::<i64>().ok());
            break;
        }
    }
    Ok(Some(if visible_us.is_some_and(|v| v >= newest_us) {
        0
    } else {
        ((pg2bq_core::civil::now_us() - newest_us) / 1000).max(0)
    }))
}

/// The status as readable text.
pub fn render(status: &StreamStatus) -> String {
    let mut out = format!(
        "stream on slot {}: {} (capture {}), confirmed {}, slot lag {} bytes\n",
        status.slot,
        status.desired_state,
        if status.capture_connected {
            "connected"
        } else {
            "not connected"
        },
        status.confirmed_lsn.as_deref().unwrap_or("-"),
        status
            .slot_lag_bytes
            .map_or("-".to_owned(), |b| b.to_string()),
    );
    let width = status
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:<width$}  {:<11}  {:>15}  {:>9}  {:>9}  {:>11}  LAST ERROR\n",
        "TABLE", "PHASE", "ROWS BACKFILLED", "CHANGES", "FRESHNESS", "QUARANTINED"
    ));
    for t in &status.tables {
        let freshness = t
            .freshness_ms
            .map_or("-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
        let quarantined = t.quarantined.map_or("-".to_owned(), |n| n.to_string());
        let error = match (&t.quarantine_error, &t.last_error) {
            (Some(q), _) => format!("quarantine: {q} (fix it, then `pg2bq quarantine retry`)"),
            (None, Some(e)) => e.clone(),
            (None, None) => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:<width$}  {:<11}  {:>15}  {:>9}  {:>9}  {:>11}  {}\n",
            t.table, t.phase, t.rows_backfilled, t.changes_published, freshness, quarantined, error
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(published: Option<i64>, error_at: Option<i64>) -> TableActivity {
        TableActivity {
            last_published_us: published,
            last_error: error_at.map(|at| ("boom".to_owned(), at)),
            ..TableActivity::default()
        }
    }

    #[test]
    fn phases() {
        assert_eq!(phase("running", false, None), "backfilling");
        assert_eq!(phase("running", true, None), "streaming");
        assert_eq!(phase("paused", true, None), "paused");
        // An error after the last publish fails the table; a later publish clears it.
        assert_eq!(
            phase("running", true, Some(&activity(Some(5), Some(9)))),
            "failed"
        );
        assert_eq!(
            phase("running", true, Some(&activity(Some(10), Some(9)))),
            "streaming"
        );
        assert_eq!(
            phase("running", true, Some(&activity(None, Some(9)))),
            "failed"
        );
    }
}
