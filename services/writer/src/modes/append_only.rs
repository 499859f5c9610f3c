//! The append-only write mode: every change is a row of the target table, with its change type,
//! sequence number, commit time, transaction id and the columns PostgreSQL did not send.
//!
//! Change types: `INSERT`, `READ` (a backfilled row), `UPDATE-INSERT` (the new row of an UPDATE),
//! `UPDATE-DELETE` (the old row of an UPDATE, when PostgreSQL sent it: the key changed or the
//! table has REPLICA IDENTITY FULL), `DELETE` (the old key or row), `TRUNCATE` (no data).
//!
//! Rows are staged in `<table>__changes` and inserted into the table by the merger, each once
//! by its sequence number and change type (`merge/log_sql.rs`): a redelivered batch or a resumed
//! backfill adds no duplicate. Nothing is ever updated in place.

use super::merge::{MergeReport, MergeTarget, Merger};
use super::rows::{BatchRows, convert_values, new_values, stamp_appended_at, unchanged_value};
use super::sink::RowSink;
use super::staged::meta_of;
use super::{WriteMode, Written};
use crate::error::Result;
use crate::row_layout::RowLayout;
use crate::shape::TableShape;
use crate::table_meta::TableKind;
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
    merger: Arc<Merger>,
}

impl AppendOnly {
    /// Writes through `sink` into tables made sure of by `tables`; `merger` inserts the staged
    /// rows into the tables.
    pub fn new(tables: Arc<TableRegistry>, sink: RowSink, merger: Arc<Merger>) -> Self {
        AppendOnly {
            tables,
            sink,
            merger,
        }
    }

    /// The append-only table of `shape` (no key, no clustering) and its staging table.
    fn tables_of(&self, shape: &TableShape, batch: &ChangeBatch) -> [TableSpec; 2] {
        [
            TableSpec {
                table: shape.target.clone(),
                fields: self.tables.fields(&shape.append_fields()),
                options: TableOptions::default(),
            },
            TableSpec {
                table: shape.target.change_table(),
                fields: self.tables.fields(&shape.append_staging_fields()),
                options: shape
                    .staging_options(meta_of(batch, shape, TableKind::Log).to_description()),
            },
        ]
    }
}

impl WriteMode for AppendOnly {
    fn write<'a>(
        &'a self,
        batch: &'a ChangeBatch,
        shape: &'a TableShape,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move {
            let written = async {
                let mut rows = append_rows(batch, shape);
                if batch.changes.is_empty() {
                    // A table announced without rows (an empty table copied): it exists in
                    // BigQuery too.
                    self.tables.ensure(self.tables_of(shape, batch)).await?;
                }
                if rows.rows.is_empty() {
                    return Ok(Written::nothing(rows.quarantined));
                }
                let staging = shape.target.change_table();
                let [_, columns] = self.tables.ensure(self.tables_of(shape, batch)).await?;
                let meta = self
                    .tables
                    .ensure_meta(&staging, &meta_of(batch, shape, TableKind::Log))
                    .await?;
                let layout = RowLayout::new(&columns, &shape.append_staging_fields())?;
                stamp_appended_at(&mut rows.rows);
                let appended = self.sink.append(&staging, &layout, &rows.rows).await?;
                rows.set_aside(appended.refused);
                self.merger
                    .mark(MergeTarget::of(shape.target.clone(), &meta, &columns))
                    .await;
                Ok(Written {
                    rows: appended.written.rows,
                    bytes: appended.written.bytes,
                    quarantined: rows.quarantined,
                })
            }
            .await;
            if written.is_err() {
                // A table may have been deleted or changed behind this writer's back.
                self.tables.forget_target(&shape.target).await;
            }
            written
        })
    }

    /// Inserts the staged rows of every table of the layout's datasets (see
    /// [`Merger::merge_all`]).
    fn merge_round(&self) -> BoxFuture<'_, Result<MergeReport>> {
        Box::pin(self.merger.merge_all())
    }
}

/// Converts every change of the batch into append-only rows: data values, then change type,
/// seq, commit time, xid and the columns not sent.
pub fn append_rows(batch: &ChangeBatch, shape: &TableShape) -> BatchRows {
    let nothing = vec![Value::Null; shape.columns.len()];
    BatchRows::build(batch, |change| {
        Ok(match change.op {
            Op::Insert => vec![row(shape, change, "INSERT", new_values(change)?)?],
            Op::Read => vec![row(shape, change, "READ", new_values(change)?)?],
            Op::Update => {
                let mut rows = Vec::with_capacity(2);
                if let Some(old) = &change.old {
                    rows.push(row(shape, change, "UPDATE-DELETE", old)?);
                }
                rows.push(row(shape, change, "UPDATE-INSERT", new_values(change)?)?);
                rows
            }
            Op::Delete => {
                let old = change.old.as_deref().unwrap_or(&nothing);
                vec![row(shape, change, "DELETE", old)?]
            }
            Op::Truncate => vec![row(shape, change, "TRUNCATE", &nothing)?],
            // A log keeps every change it recorded: the end of a re-copy removes nothing.
            Op::Sweep => Vec::new(),
        })
    })
}

fn row(
    shape: &TableShape,
    change: &Change,
    change_type: &str,
    values: &[Value],
) -> std::result::Result<Vec<BqValue>, String> {
    let converted = convert_values(shape, values)?;
    let mut row = converted.values;
    row.push(BqValue::Text(change_type.to_owned()));
    row.push(BqValue::Text(change.seq.to_string()));
    row.push(BqValue::Timestamp(change.commit_time_us));
    row.push(BqValue::Int64(i64::from(change.xid)));
    row.push(unchanged_value(shape, &converted.unchanged));
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
            generation: 0,
            control: None,
        };
        let shape = TableShape::new(
            BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &columns,
        );
        let rows = append_rows(&batch, &shape).rows;
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
