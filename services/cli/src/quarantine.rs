//! `pg2bq quarantine list|retry`: the changes the writer could not write, and sending them again
//! once the cause is fixed.
//!
//! The quarantine lives in BigQuery, one table per dataset (`pg2bq_bigquery::quarantine`). A
//! retry publishes the open changes to the stream's topic again, grouped into change batches of
//! one table each, with the message attribute `retry`; the writer writes them like any batch
//! (the newest change per key still wins, so an old change never overwrites a newer one) and
//! records each one it wrote as resolved. A change that still cannot be written is quarantined
//! again, with the new reason.

use crate::error::{CliError, Result};
use crate::pubsub::{Outgoing, Publisher};
use pg2bq_bigquery::quarantine::{self, OpenChange, TableSummary};
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::bq_naming::{DatasetLayout, Datasets};
use pg2bq_core::wire::{ChangeBatch, WIRE_VERSION, attributes};
use serde::Serialize;
use std::collections::BTreeMap;

/// Most changes in one retried batch.
const MAX_CHANGES: usize = 500;

/// The datasets the layout writes to (those that exist, for a per-schema layout).
pub async fn datasets(rest: &RestClient, layout: &DatasetLayout) -> Result<Vec<String>> {
    Ok(match layout.datasets() {
        Datasets::Single { dataset } => vec![dataset.clone()],
        Datasets::PerSchema { prefix } => rest
            .list_datasets()
            .await
            .map_err(CliError::bigquery("listing datasets"))?
            .into_iter()
            .filter(|d| d.starts_with(prefix.as_str()))
            .collect(),
    })
}

/// Open quarantined changes per source table, over every dataset of the layout.
pub async fn summaries(rest: &RestClient, layout: &DatasetLayout) -> Result<Vec<TableSummary>> {
    let mut all = Vec::new();
    for dataset in datasets(rest, layout).await? {
        all.extend(
            quarantine::summary(rest, &dataset)
                .await
                .map_err(CliError::bigquery(format!(
                    "reading the quarantine of {dataset}"
                )))?,
        );
    }
    Ok(all)
}

/// One open change, for `list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The dataset whose quarantine holds it.
    pub dataset: String,
    /// `schema.table`.
    pub table: String,
    /// Its sequence number.
    pub seq: String,
    /// Why it could not be written.
    pub error: String,
}

/// The open changes, of `table` only if given.
pub async fn open(
    rest: &RestClient,
    layout: &DatasetLayout,
    table: Option<&str>,
) -> Result<Vec<(String, OpenChange)>> {
    let mut all = Vec::new();
    for dataset in datasets(rest, layout).await? {
        let changes = quarantine::open_changes(rest, &dataset, table)
            .await
            .map_err(CliError::bigquery(format!(
                "reading the quarantine of {dataset}"
            )))?;
        all.extend(changes.into_iter().map(|c| (dataset.clone(), c)));
    }
    Ok(all)
}

/// The messages that send `changes` again: one change batch per table and column list, in
/// sequence order, at most [`MAX_CHANGES`] changes each. A change recorded without its values
/// (too big to keep) is left out.
pub fn retry_messages(changes: &[OpenChange]) -> Result<Vec<Outgoing>> {
    let mut groups: BTreeMap<(String, String), ChangeBatch> = BTreeMap::new();
    let mut messages = Vec::new();
    for open in changes {
        if open.change.is_empty() {
            // Too big to be kept in the quarantine (its error says so): nothing to send again.
            continue;
        }
        let single = ChangeBatch::from_json(open.change.as_bytes()).map_err(|e| {
            CliError::Config(format!(
                "quarantined change {} of {} cannot be read: {e}",
                open.seq, open.source_table
            ))
        })?;
        let columns = serde_json::to_string(&single.columns).expect("columns serialise");
        let key = (single.source.to_string(), columns);
        let batch = groups.entry(key).or_insert_with(|| ChangeBatch {
            version: WIRE_VERSION,
            source: single.source.clone(),
            columns: single.columns.clone(),
            changes: Vec::new(),
            generation: 0,
            control: None,
        });
        batch.changes.extend(single.changes);
        if batch.changes.len() >= MAX_CHANGES {
            let full = std::mem::replace(
                batch,
                ChangeBatch {
                    changes: Vec::new(),
                    ..batch.clone()
                },
            );
            messages.push(message(&full));
        }
    }
    messages.extend(
        groups
            .values()
            .filter(|b| !b.changes.is_empty())
            .map(message),
    );
    Ok(messages)
}

fn message(batch: &ChangeBatch) -> Outgoing {
    let seq =
        |i: Option<&pg2bq_core::wire::Change>| i.map(|c| c.seq.to_string()).unwrap_or_default();
    let attributes = [
        (attributes::TABLE, batch.source.to_string()),
        (attributes::VERSION, WIRE_VERSION.to_string()),
        (attributes::CHANGES, batch.changes.len().to_string()),
        (attributes::FIRST_SEQ, seq(batch.changes.first())),
        (attributes::LAST_SEQ, seq(batch.changes.last())),
        (attributes::ENCODING, "json".to_owned()),
        (attributes::RETRY, "quarantine".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Outgoing {
        data: batch.to_json(),
        attributes,
    }
}

/// Publishes the open changes (of `table` only if given) again; returns how many changes and
/// messages it sent.
pub async fn retry(
    rest: &RestClient,
    layout: &DatasetLayout,
    publisher: &Publisher,
    table: Option<&str>,
) -> Result<(usize, usize)> {
    let open: Vec<OpenChange> = open(rest, layout, table)
        .await?
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let messages = retry_messages(&open)?;
    publisher.publish(&messages).await?;
    Ok((open.len(), messages.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::lsn::Lsn;
    use pg2bq_core::seq::Seq;
    use pg2bq_core::wire::{Change, ColumnSpec, Op, TableId, Value};

    fn open(table: &str, ordinal: u64) -> OpenChange {
        let batch = ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "s".into(),
                table: table.into(),
            },
            columns: vec![ColumnSpec {
                name: "id".into(),
                pg_type: "int4".into(),
                type_modifier: -1,
                key: true,
            }],
            changes: vec![Change {
                op: Op::Insert,
                seq: Seq::new(Lsn(1), ordinal),
                commit_time_us: 1,
                xid: 1,
                new: Some(vec![Value::Text(ordinal.to_string())]),
                old: None,
            }],
            generation: 0,
            control: None,
        };
        OpenChange {
            id: format!("{ordinal}"),
            source_table: format!("s.{table}"),
            seq: batch.changes[0].seq.to_string(),
            error: "boom".into(),
            change: String::from_utf8(batch.to_json()).unwrap(),
        }
    }

    #[test]
    fn changes_are_sent_again_as_one_batch_per_table_flagged_as_a_retry() {
        let messages = retry_messages(&[open("a", 1), open("b", 2), open("a", 3)]).unwrap();
        assert_eq!(messages.len(), 2);
        let a = ChangeBatch::from_json(&messages[0].data).unwrap();
        assert_eq!(a.source.table, "a");
        assert_eq!(a.changes.len(), 2);
        assert_eq!(messages[0].attributes["retry"], "quarantine");
        assert_eq!(messages[0].attributes["changes"], "2");
        assert_eq!(
            messages[0].attributes["last_seq"],
            Seq::new(Lsn(1), 3).to_string()
        );
    }
}
