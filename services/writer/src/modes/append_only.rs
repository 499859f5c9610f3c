//! The append-only write mode: every change is a row of the target table, with its change type,
//! sequence number, commit time and transaction id.
//!
//! Change types: `INSERT`, `READ` (a backfilled row), `UPDATE-INSERT` (the new row of an UPDATE),
//! `UPDATE-DELETE` (the old row of an UPDATE, when PostgreSQL sent it: the key changed or the
//! table has REPLICA IDENTITY FULL), `DELETE` (the old key or row), `TRUNCATE` (no data).
//!
//! The table has no primary key and no MERGE: nothing is ever updated in place.

use super::rows::{data_values, new_values};
use super::sink::RowSink;
use super::{WriteMode, Written};
use crate::error::Result;
use crate::row_layout::RowLayout;
use crate::shape::TableShape;
use crate::tables::{TableRegistry, TableSpec};
use futures::future::BoxFuture;
use pg2bq_bigquery::rest::TableOptions;
use pg2bq_core::bq_values::BqValue;
use pg2bq_core::wire::{Change, ChangeBatch, Op, Value};
use std::sync::Arc;

/// The append-only write mode.
pub struct AppendOnly {
    tables: Arc<TableRegistry>,
    sink: RowSink,
}

impl AppendOnly {
    /// Writes through `sink` into tables made sure of by `tables`.
    pub fn new(tables: Arc<TableRegistry>, sink: RowSink) -> Self {
        AppendOnly { tables, sink }
    }

    /// The append-only table of `shape`: no key, no clustering.
    fn table(&self, shape: &TableShape) -> TableSpec {
        TableSpec {
            table: shape.target.clone(),
            fields: self.tables.fields(&shape.append_fields()),
            options: TableOptions::default(),
        }
    }
}

impl WriteMode for AppendOnly {
    fn write<'a>(
        &'a self,
        batch: &'a ChangeBatch,
        shape: &'a TableShape,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move {
            let rows = append_rows(batch, shape)?;
            let [columns] = self.tables.ensure([self.table(shape)]).await?;
            let layout = RowLayout::new(&columns, &shape.append_fields())?;
            self.sink.append(&shape.target, &layout, &rows).await
        })
    }
}

/// An append-only row before encoding: data values, then change type, seq, commit time, xid.
pub type AppendRow = Vec<BqValue>;

/// Converts every change of the batch into append-only rows.
pub fn append_rows(batch: &ChangeBatch, shape: &TableShape) -> Result<Vec<AppendRow>> {
    let mut rows = Vec::with_capacity(batch.changes.len());
    let nothing = vec![Value::Null; shape.columns.len()];
    for change in &batch.changes {
        match change.op {
            Op::Insert => rows.push(row(batch, shape, change, "INSERT", new_values(change)?)?),
            Op::Read => rows.push(row(batch, shape, change, "READ", new_values(change)?)?),
            Op::Update => {
                if let Some(old) = &change.old {
                    rows.push(row(batch, shape, change, "UPDATE-DELETE", old)?);
                }
                rows.push(row(
                    batch,
                    shape,
                    change,
                    "UPDATE-INSERT",
                    new_values(change)?,
                )?);
            }
            Op::Delete => {
                let old = change.old.as_deref().unwrap_or(&nothing);
                rows.push(row(batch, shape, change, "DELETE", old)?);
            }
            Op::Truncate => rows.push(row(batch, shape, change, "TRUNCATE", &nothing)?),
        }
    }
    Ok(rows)
}

fn row(
    batch: &ChangeBatch,
    shape: &TableShape,
    change: &Change,
    change_type: &str,
    values: &[Value],
) -> Result<AppendRow> {
    let mut row = data_values(batch, shape, change, values)?;
    row.push(BqValue::Text(change_type.to_owned()));
    row.push(BqValue::Text(change.seq.to_string()));
    row.push(BqValue::Timestamp(change.commit_time_us));
    row.push(BqValue::Int64(i64::from(change.xid)));
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::bq_naming::BqTableName;
    use pg2bq_core::lsn::Lsn;
    use pg2bq_core::seq::Seq;
    use pg2bq_core::wire::{ColumnSpec, TableId, WIRE_VERSION};

    #[test]
    fn an_update_with_its_old_row_is_two_rows_and_a_truncate_one() {
        let columns = vec![ColumnSpec {
            name: "v".into(),
            pg_type: "int4".into(),
            type_modifier: -1,
            key: false,
        }];
        let change = |op, new: Option<&str>, old: Option<&str>| Change {
            op,
            seq: Seq::new(Lsn(9), 1),
            commit_time_us: 5,
            xid: 77,
            new: new.map(|v| vec![Value::Text(v.into())]),
            old: old.map(|v| vec![Value::Text(v.into())]),
        };
        let batch = ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "s".into(),
                table: "t".into(),
            },
            columns: columns.clone(),
            changes: vec![
                change(Op::Update, Some("2"), Some("1")),
                change(Op::Update, Some("3"), None),
                change(Op::Truncate, None, None),
            ],
        };
        let shape = TableShape::new(
            BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &columns,
        );
        let rows = append_rows(&batch, &shape).unwrap();
        let kinds: Vec<&BqValue> = rows.iter().map(|r| &r[1]).collect();
        let text = |s: &str| BqValue::Text(s.into());
        assert_eq!(
            kinds,
            vec![
                &text("UPDATE-DELETE"),
                &text("UPDATE-INSERT"),
                &text("UPDATE-INSERT"),
                &text("TRUNCATE")
            ]
        );
        assert_eq!(rows[0][0], BqValue::Int64(1));
        assert_eq!(rows[3][0], BqValue::Null);
        assert_eq!(rows[0][4], BqValue::Int64(77));
    }
}
