//! The quarantine table: its columns, its events, and the queries that read it. The writer
//! appends events (`pg2bq_writer::quarantine`); `pg2bq quarantine` and `pg2bq stream status`
//! read them.
//!
//! Each dataset has one table `_pg2bq_quarantine` of events: `quarantined` (a change that could
//! not be written, with the raw change as a one-change batch and the error) and `resolved` (a
//! quarantined change written after a retry). A change is open while its newest `quarantined`
//! event is newer than its newest `resolved` one.

use crate::error::Result;
use crate::rest::RestClient;
use pg2bq_core::bq_naming::{BqTableName, QUARANTINE_TABLE};
use pg2bq_core::bq_types::BqType;

/// The columns of the quarantine table, in row order.
pub const FIELDS: [(&str, BqType); 10] = [
    ("id", BqType::String),
    ("event", BqType::String),
    ("occurred_at", BqType::Timestamp),
    ("source_table", BqType::String),
    ("target_table", BqType::String),
    ("seq", BqType::String),
    ("op", BqType::String),
    ("error", BqType::String),
    ("change", BqType::String),
    ("message_id", BqType::String),
];

/// Event of a change set aside.
pub const QUARANTINED: &str = "quarantined";
/// Event of a quarantined change written after a retry.
pub const RESOLVED: &str = "resolved";

/// The quarantine table of a dataset.
pub fn table(dataset: &str) -> BqTableName {
    BqTableName {
        dataset: dataset.to_owned(),
        table: QUARANTINE_TABLE.to_owned(),
    }
}

/// The open changes of one source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// `schema.table` in the source.
    pub source_table: String,
    /// Changes waiting in the quarantine.
    pub open: i64,
    /// The error of the oldest of them.
    pub first_error: String,
}

/// One open change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenChange {
    /// Its identity in the quarantine.
    pub id: String,
    /// `schema.table` in the source.
    pub source_table: String,
    /// Its sequence number.
    pub seq: String,
    /// Why it was quarantined (the newest time).
    pub error: String,
    /// The change as a one-change batch (JSON of the wire format).
    pub change: String,
}

/// SQL of the ids of open changes of a quarantine table.
fn open_ids(quarantine: &str) -> String {
    format!(
        "SELECT id, MAX(source_table) AS source_table, \
                MIN(IF(event = '{QUARANTINED}', occurred_at, NULL)) AS first_at \
         FROM {quarantine} GROUP BY id \
         HAVING MAX(IF(event = '{RESOLVED}', occurred_at, NULL)) IS NULL \
             OR MAX(IF(event = '{QUARANTINED}', occurred_at, NULL)) > MAX(IF(event = '{RESOLVED}', occurred_at, NULL))"
    )
}

/// Whether `dataset` has a quarantine table.
pub async fn exists(rest: &RestClient, dataset: &str) -> Result<bool> {
    Ok(rest.table(&table(dataset)).await?.is_some())
}

/// The open changes of `dataset`, per source table, with the error of the oldest; empty when
/// the dataset has no quarantine table.
pub async fn summary(rest: &RestClient, dataset: &str) -> Result<Vec<TableSummary>> {
    if !exists(rest, dataset).await? {
        return Ok(Vec::new());
    }
    let quarantine = table(dataset).quoted(rest.project());
    let ids = open_ids(&quarantine);
    let counts = rest
        .query(&format!(
            "WITH open_ids AS ({ids}) SELECT source_table, COUNT(*) FROM open_ids \
             GROUP BY source_table ORDER BY source_table"
        ))
        .await?;
    let errors = rest
        .query(&format!(
            "WITH open_ids AS ({ids}) SELECT q.source_table, q.error FROM {quarantine} AS q \
             JOIN open_ids USING (id) WHERE q.event = '{QUARANTINED}' \
             QUALIFY ROW_NUMBER() OVER (PARTITION BY q.source_table ORDER BY q.occurred_at) = 1"
        ))
        .await?;
    let cell =
        |row: &Vec<Option<String>>, i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    Ok(counts
        .rows
        .iter()
        .map(|row| {
            let source_table = cell(row, 0);
            let first_error = errors
                .rows
                .iter()
                .find(|e| cell(e, 0) == source_table)
                .map(|e| cell(e, 1))
                .unwrap_or_default();
            TableSummary {
                open: cell(row, 1).parse().unwrap_or(0),
                source_table,
                first_error,
            }
        })
        .collect())
}

/// The open changes of `dataset` (of `source_table` only, if given), oldest first by sequence
/// number; empty when the dataset has no quarantine table.
pub async fn open_changes(
    rest: &RestClient,
    dataset: &str,
    source_table: Option<&str>,
) -> Result<Vec<OpenChange>> {
    if !exists(rest, dataset).await? {
        return Ok(Vec::new());
    }
    let quarantine = table(dataset).quoted(rest.project());
    let filter = match source_table {
        Some(name) => format!(
            " AND q.source_table = '{}'",
            name.replace('\\', "\\\\").replace('\'', "\\'")
        ),
        None => String::new(),
    };
    let rows = rest
        .query(&format!(
            "WITH open_ids AS ({}) SELECT q.id, q.source_table, q.seq, q.error, q.change \
             FROM {quarantine} AS q JOIN open_ids USING (id) WHERE q.event = '{QUARANTINED}'{filter} \
             QUALIFY ROW_NUMBER() OVER (PARTITION BY q.id ORDER BY q.occurred_at DESC) = 1 \
             ORDER BY q.source_table, q.seq",
            open_ids(&quarantine)
        ))
        .await?;
    Ok(rows
        .rows
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter().map(Option::unwrap_or_default);
            let mut next = || cells.next().unwrap_or_default();
            OpenChange {
                id: next(),
                source_table: next(),
                seq: next(),
                error: next(),
                change: next(),
            }
        })
        .collect())
}
