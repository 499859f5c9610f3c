//! The quarantine: changes that cannot be written, kept in BigQuery with the reason, so that one
//! bad change never takes the others with it and nothing is dead-lettered for a data problem.
//!
//! Each dataset has a table `_pg2bq_quarantine` of events (its layout and readers are
//! `pg2bq_bigquery::quarantine`). A `quarantined` event holds the raw
//! change (as a one-change batch, with its table's columns), its sequence number and the error.
//! `pg2bq quarantine retry` publishes quarantined changes again, with the message attribute
//! `retry`; once a writer writes such a change, it adds a `resolved` event for it. A change is
//! quarantined while it has a `quarantined` event and no `resolved` one (`pg2bq stream status`
//! shows the table as degraded). Events are only ever appended.

use crate::error::Result;
use crate::modes::rows::Quarantined;
use crate::modes::sink::RowSink;
use crate::row_layout::RowLayout;
use crate::tables::{TableRegistry, TableSpec};
use pg2bq_bigquery::quarantine::{FIELDS, QUARANTINED, RESOLVED};
use pg2bq_bigquery::rest::TableOptions;
use pg2bq_core::bq_naming::BqTableName;
use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::BqValue;
use pg2bq_core::civil::now_us;
use pg2bq_core::wire::{Change, ChangeBatch, TableId};
use std::sync::Arc;

/// Appends quarantine events.
pub struct QuarantineLog {
    tables: Arc<TableRegistry>,
    sink: RowSink,
}

impl QuarantineLog {
    /// Events appended through `sink` into tables made sure of by `tables`.
    pub fn new(tables: Arc<TableRegistry>, sink: RowSink) -> Self {
        QuarantineLog { tables, sink }
    }

    /// Records that `items` of `batch`, bound for `target`, cannot be written.
    pub async fn record(
        &self,
        target: &BqTableName,
        batch: &ChangeBatch,
        items: &[Quarantined],
        message_id: &str,
    ) -> Result<()> {
        let rows = items
            .iter()
            .filter_map(|item| {
                let change = batch.changes.get(item.change)?;
                Some(event_row(
                    QUARANTINED,
                    target,
                    batch,
                    change,
                    &item.error,
                    message_id,
                ))
            })
            .collect::<Vec<_>>();
        self.append(target, rows).await
    }

    /// Records that the changes of `batch` (a retry) were written, but those at `except`.
    pub async fn resolve(
        &self,
        target: &BqTableName,
        batch: &ChangeBatch,
        except: &[usize],
        message_id: &str,
    ) -> Result<()> {
        let rows = batch
            .changes
            .iter()
            .enumerate()
            .filter(|(i, _)| !except.contains(i))
            .map(|(_, change)| event_row(RESOLVED, target, batch, change, "", message_id))
            .collect::<Vec<_>>();
        self.append(target, rows).await
    }

    async fn append(&self, target: &BqTableName, rows: Vec<Vec<BqValue>>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let table = pg2bq_bigquery::quarantine::table(&target.dataset);
        let fields: Vec<(String, BqType)> = FIELDS
            .iter()
            .map(|(name, bq_type)| ((*name).to_owned(), *bq_type))
            .collect();
        let spec = TableSpec {
            table: table.clone(),
            fields: self.tables.fields(&fields),
            options: TableOptions {
                clustering: vec!["source_table".to_owned()],
                description: Some(
                    "pg2bq: changes that could not be written, with the reason; see \
                     `pg2bq quarantine list`"
                        .to_owned(),
                ),
                ..TableOptions::default()
            },
        };
        let [columns] = self.tables.ensure([spec]).await?;
        let layout = RowLayout::new(&columns, &fields)?;
        let appended = self.sink.append(&table, &layout, &rows).await?;
        if let Some((_, reason)) = appended.refused.first() {
            // Nothing may be lost: the push is answered with an error and delivered again.
            return Err(crate::error::WriterError::BigQuery(
                pg2bq_bigquery::BigQueryError::Transient(format!(
                    "BigQuery refused a quarantine event ({reason})"
                )),
            ));
        }
        Ok(())
    }
}

/// The largest change kept whole in a quarantine event. A bigger one is recorded without its
/// values (its `change` is NULL; the error says so): an event is one BigQuery row, and a row
/// holds at most 100 MB. Such a change cannot be retried; the row's next change replicates it.
pub const MAX_KEPT_CHANGE_BYTES: usize = 32 << 20;

fn event_row(
    event: &str,
    target: &BqTableName,
    batch: &ChangeBatch,
    change: &Change,
    error: &str,
    message_id: &str,
) -> Vec<BqValue> {
    let text = |s: &str| BqValue::Text(s.to_owned());
    let single = ChangeBatch {
        version: batch.version,
        source: batch.source.clone(),
        columns: batch.columns.clone(),
        changes: vec![change.clone()],
        generation: batch.generation,
        control: None,
    };
    let json = single.to_json();
    let (kept, error) = if json.len() > MAX_KEPT_CHANGE_BYTES {
        let note = format!(
            "the change ({} bytes) is too big to keep in the quarantine; it cannot be retried",
            json.len()
        );
        let error = if error.is_empty() {
            note
        } else {
            format!("{error} ({note})")
        };
        (BqValue::Null, error)
    } else {
        (
            BqValue::Text(String::from_utf8_lossy(&json).into_owned()),
            error.to_owned(),
        )
    };
    vec![
        text(&change_id(&batch.source, change)),
        text(event),
        BqValue::Timestamp(now_us()),
        text(&batch.source.to_string()),
        text(&target.table),
        text(&change.seq.to_string()),
        text(&format!("{:?}", change.op).to_lowercase()),
        if error.is_empty() {
            BqValue::Null
        } else {
            text(&error)
        },
        kept,
        text(message_id),
    ]
}

/// A change's identity in the quarantine: its table, its sequence number and a hash of the
/// change (backfilled rows of one snapshot differ by their last sections, but a change and its
/// redelivery are the same). FNV-1a, so that it is the same in every build.
pub fn change_id(source: &TableId, change: &Change) -> String {
    let json = serde_json::to_vec(change).expect("a change always serialises");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in source.to_string().bytes().chain([0]).chain(json) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}#{hash:016x}", change.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::lsn::Lsn;
    use pg2bq_core::seq::Seq;
    use pg2bq_core::wire::{Op, Value};

    #[test]
    fn a_change_and_its_redelivery_share_an_id_other_changes_do_not() {
        let table = TableId {
            schema: "s".into(),
            table: "t".into(),
        };
        let change = |v: &str| Change {
            op: Op::Insert,
            seq: Seq::new(Lsn(9), 1),
            commit_time_us: 5,
            xid: 1,
            new: Some(vec![Value::Text(v.into())]),
            old: None,
        };
        let id = change_id(&table, &change("a"));
        assert_eq!(id, change_id(&table, &change("a")));
        assert_ne!(id, change_id(&table, &change("b")));
        assert!(id.starts_with("0000000000000009/0000000000000001#"), "{id}");
        let other = TableId {
            schema: "s".into(),
            table: "u".into(),
        };
        assert_ne!(id, change_id(&other, &change("a")));
    }

    #[test]
    fn a_change_too_big_to_keep_is_recorded_without_its_values() {
        let batch = |value: String| ChangeBatch {
            version: 1,
            source: TableId {
                schema: "s".into(),
                table: "t".into(),
            },
            columns: Vec::new(),
            generation: 0,
            control: None,
            changes: vec![Change {
                op: Op::Insert,
                seq: Seq::new(Lsn(9), 1),
                commit_time_us: 5,
                xid: 1,
                new: Some(vec![Value::Text(value)]),
                old: None,
            }],
        };
        let target = BqTableName {
            dataset: "d".into(),
            table: "t".into(),
        };
        let small = batch("x".into());
        let row = event_row(QUARANTINED, &target, &small, &small.changes[0], "bad", "m");
        assert!(matches!(&row[8], BqValue::Text(t) if t.contains("\"x\"")));
        assert_eq!(row[7], BqValue::Text("bad".into()));
        let big = batch("y".repeat(MAX_KEPT_CHANGE_BYTES));
        let row = event_row(QUARANTINED, &target, &big, &big.changes[0], "too big", "m");
        assert_eq!(row[8], BqValue::Null);
        assert!(
            matches!(&row[7], BqValue::Text(t) if t.starts_with("too big (the change (") && t.ends_with("cannot be retried)")),
            "{:?}",
            row[7]
        );
    }
}
