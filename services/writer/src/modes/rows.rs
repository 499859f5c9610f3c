//! Rows from changes, shared by the write modes.
//!
//! A batch becomes [`BatchRows`]: the rows to append, the change each row comes from, and the
//! changes that cannot be written ([`Quarantined`], with the reason). One change that cannot be
//! converted never takes the others with it: it is set aside, and the others are written.
//!
//! - [`change_rows`]: one UPSERT or DELETE per key, or a TRUNCATE, for the staged and native
//!   strategies. An INSERT, a backfilled row and an UPDATE upsert the new row; a DELETE deletes
//!   the old key; an UPDATE that changes the key deletes the old key and upserts the new one,
//!   both with the change's sequence number; a TRUNCATE is a row without data (see
//!   `staged/statements.rs`).
//! - [`convert_values`]: one row's values by column type. A value PostgreSQL did not send (an
//!   unchanged TOAST value) becomes NULL and is named in the row's `_pg2bq_unchanged` column,
//!   so that the MERGE takes it from an older change of the key or from the mirror.

use crate::metrics::noted;
use crate::shape::TableShape;
use pg2bq_core::bq_values::{BqValue, convert_with_adjustment};
use pg2bq_core::wire::{Change, ChangeBatch, Op, Value};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Adds the time of the append (now, by this writer's clock, in microseconds since the Unix
/// epoch) to every row: the staging tables' last column.
pub fn stamp_appended_at(rows: &mut [Vec<BqValue>]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    for row in rows {
        row.push(BqValue::Timestamp(now));
    }
}

/// What a change-table row does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    /// Insert or replace the row.
    Upsert,
    /// Remove the row.
    Delete,
    /// Remove every row older than this one.
    Truncate,
}

impl RowOp {
    /// The text stored in the op column.
    pub fn as_str(self) -> &'static str {
        match self {
            RowOp::Upsert => "UPSERT",
            RowOp::Delete => "DELETE",
            RowOp::Truncate => "TRUNCATE",
        }
    }
}

/// A change of the batch that cannot be written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Its position in the batch.
    pub change: usize,
    /// Why, with the fix where there is one.
    pub error: String,
}

/// The rows of a batch.
#[derive(Debug, Default)]
pub struct BatchRows {
    /// Rows to append, values in the mode's field order.
    pub rows: Vec<Vec<BqValue>>,
    /// For each row, the position of its change in the batch.
    pub origins: Vec<usize>,
    /// Changes set aside.
    pub quarantined: Vec<Quarantined>,
}

impl BatchRows {
    /// Converts every change with `rows_of`, which returns a change's rows or why it cannot be
    /// written. A panic while converting one change sets that change aside like an error.
    pub fn build(
        batch: &ChangeBatch,
        mut rows_of: impl FnMut(&Change) -> Result<Vec<Vec<BqValue>>, String>,
    ) -> Self {
        let mut out = BatchRows::default();
        for (index, change) in batch.changes.iter().enumerate() {
            let converted = catch_unwind(AssertUnwindSafe(|| rows_of(change)))
                .unwrap_or_else(|panic| Err(internal_error(panic.as_ref())));
            match converted {
                Ok(rows) => {
                    out.origins.extend(std::iter::repeat_n(index, rows.len()));
                    out.rows.extend(rows);
                }
                Err(error) => out.quarantined.push(Quarantined {
                    change: index,
                    error: format!("{} (seq {}): {error}", batch.source, change.seq),
                }),
            }
        }
        out
    }

    /// Sets aside the changes of `rows` (by row position) too, with their reasons; their other
    /// rows are dropped. Returns the rows that remain, with their origins.
    pub fn set_aside(&mut self, refused: Vec<(usize, String)>) {
        let mut changes: Vec<(usize, String)> = refused
            .into_iter()
            .filter_map(|(row, error)| Some((*self.origins.get(row)?, error)))
            .collect();
        changes.sort_by_key(|(change, _)| *change);
        changes.dedup_by_key(|(change, _)| *change);
        let dropped: Vec<usize> = changes.iter().map(|(change, _)| *change).collect();
        let (rows, origins): (Vec<_>, Vec<_>) = std::mem::take(&mut self.rows)
            .into_iter()
            .zip(std::mem::take(&mut self.origins))
            .filter(|(_, origin)| !dropped.contains(origin))
            .unzip();
        self.rows = rows;
        self.origins = origins;
        self.quarantined.extend(
            changes
                .into_iter()
                .map(|(change, error)| Quarantined { change, error }),
        );
    }
}

fn internal_error(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("internal error while converting the change ({what}); please report it")
}

/// Converts every change of the batch into change-table rows (the table must have a key): data
/// values, then op, seq, commit time and the columns not sent.
pub fn change_rows(batch: &ChangeBatch, shape: &TableShape) -> BatchRows {
    BatchRows::build(batch, |change| {
        let row = |op: RowOp, values: &[Value]| -> Result<Vec<BqValue>, String> {
            let converted = convert_values(shape, values)?;
            let mut row = converted.values;
            row.push(BqValue::Text(op.as_str().to_owned()));
            row.push(BqValue::Text(change.seq.to_string()));
            row.push(BqValue::Timestamp(change.commit_time_us));
            row.push(unchanged_value(shape, &converted.unchanged));
            Ok(row)
        };
        Ok(match change.op {
            Op::Read | Op::Insert => vec![row(RowOp::Upsert, new_values(change)?)?],
            Op::Update => {
                let new = new_values(change)?;
                let mut rows = Vec::with_capacity(2);
                if let Some(old) = &change.old
                    && key_changed(shape, old, new)
                {
                    rows.push(row(RowOp::Delete, old)?);
                }
                rows.push(row(RowOp::Upsert, new)?);
                rows
            }
            Op::Delete => vec![row(
                RowOp::Delete,
                change.old.as_deref().unwrap_or_default(),
            )?],
            // The end of a re-copy removes older rows not copied again, as a TRUNCATE at
            // the copy's consistent point does: the copy's own rows are all newer.
            Op::Truncate | Op::Sweep => vec![row(
                RowOp::Truncate,
                &vec![Value::Null; shape.columns.len()],
            )?],
        })
    })
}

/// The new row of an insert, update or backfilled row.
pub fn new_values(change: &Change) -> Result<&[Value], String> {
    change
        .new
        .as_deref()
        .ok_or_else(|| format!("a {:?} change without a new row", change.op))
}

fn key_changed(shape: &TableShape, old: &[Value], new: &[Value]) -> bool {
    shape
        .columns
        .iter()
        .zip(old.iter().zip(new))
        .any(|(column, (before, after))| column.key && before != after)
}

/// One row's values, converted by column type.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    /// The BigQuery values, one per column of the shape.
    pub values: Vec<BqValue>,
    /// Positions of the columns PostgreSQL did not send (unchanged TOAST values, now NULL).
    pub unchanged: Vec<usize>,
}

/// Converts one row's values by column type; an error names the column and the value.
pub fn convert_values(shape: &TableShape, values: &[Value]) -> Result<Values, String> {
    let mut out = Values {
        values: Vec::with_capacity(values.len() + 5),
        unchanged: Vec::new(),
    };
    for (i, (column, value)) in shape.columns.iter().zip(values).enumerate() {
        let converted = match value {
            Value::Null => BqValue::Null,
            Value::Text(text) => noted(convert_with_adjustment(
                &column.pg_type,
                column.bq_type,
                text,
            ))
            .map_err(|e| format!("column {}: {e}", column.name))?,
            Value::UnchangedToast => {
                out.unchanged.push(i);
                BqValue::Null
            }
            Value::InvalidUtf8(bytes) => return Err(invalid_utf8(&column.name, bytes)),
        };
        out.values.push(converted);
    }
    Ok(out)
}

/// Why a value that is not UTF-8 cannot be written, and the fix.
fn invalid_utf8(column: &str, bytes: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
    format!(
        "column {column}: the value is not valid UTF-8 ({} bytes, {shown:?}; the source database \
         stores text in an encoding such as SQL_ASCII that accepts any bytes), and BigQuery \
         holds only UTF-8 text. Fix: correct the value at the source (an UPDATE of the row \
         replicates it and supersedes this change), or keep such data in a bytea column",
        bytes.len()
    )
}

/// The `_pg2bq_unchanged` value of a row: `,name,name,` of the columns not sent, or NULL.
pub fn unchanged_value(shape: &TableShape, unchanged: &[usize]) -> BqValue {
    if unchanged.is_empty() {
        return BqValue::Null;
    }
    let mut text = String::from(",");
    for &i in unchanged {
        text.push_str(&shape.columns[i].name);
        text.push(',');
    }
    BqValue::Text(text)
}

/// The names of the columns that arrive unchanged in any row of the batch.
pub fn unchanged_columns(batch: &ChangeBatch, shape: &TableShape) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for change in &batch.changes {
        for row in [&change.new, &change.old].into_iter().flatten() {
            for (column, value) in shape.columns.iter().zip(row) {
                if *value == Value::UnchangedToast && !columns.contains(&column.name) {
                    columns.push(column.name.clone());
                }
            }
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::bq_naming::BqTableName;
    use pg2bq_core::lsn::Lsn;
    use pg2bq_core::seq::Seq;
    use pg2bq_core::wire::{ColumnSpec, TableId, WIRE_VERSION};

    fn batch(changes: Vec<Change>) -> ChangeBatch {
        ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "public".into(),
                table: "t".into(),
            },
            columns: vec![
                ColumnSpec {
                    name: "id".into(),
                    pg_type: "int4".into(),
                    type_modifier: -1,
                    key: true,
                },
                ColumnSpec {
                    name: "v".into(),
                    pg_type: "text".into(),
                    type_modifier: -1,
                    key: false,
                },
            ],
            changes,
            generation: 0,
            control: None,
        }
    }

    fn shape(b: &ChangeBatch) -> TableShape {
        TableShape::new(
            BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &b.columns,
        )
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn update(old: Option<Vec<Value>>, new: Vec<Value>) -> Change {
        Change {
            op: Op::Update,
            seq: Seq::new(Lsn(5), 1),
            commit_time_us: 7,
            xid: 1,
            new: Some(new),
            old,
        }
    }

    #[test]
    fn a_key_change_deletes_the_old_key_and_upserts_the_new() {
        let b = batch(vec![update(
            Some(vec![text("1"), Value::Null]),
            vec![text("2"), text("x")],
        )]);
        let rows = change_rows(&b, &shape(&b)).rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], BqValue::Int64(1));
        assert_eq!(rows[0][2], BqValue::Text("DELETE".into()));
        assert_eq!(rows[1][0], BqValue::Int64(2));
        assert_eq!(rows[1][2], BqValue::Text("UPSERT".into()));
        assert_eq!(
            rows[1][3],
            BqValue::Text("0000000000000005/0000000000000001".into())
        );
        assert_eq!(rows[1][4], BqValue::Timestamp(7));
        assert_eq!(rows[1][5], BqValue::Null, "every value was sent");
    }

    #[test]
    fn an_update_keeping_its_key_is_one_upsert() {
        let b = batch(vec![update(None, vec![text("2"), text("x")])]);
        assert_eq!(change_rows(&b, &shape(&b)).rows.len(), 1);
    }

    #[test]
    fn unchanged_toast_values_are_null_and_named_and_bad_values_are_set_aside() {
        let b = batch(vec![
            update(None, vec![text("2"), Value::UnchangedToast]),
            update(None, vec![text("two"), text("x")]),
            update(None, vec![text("3"), text("y")]),
        ]);
        let rows = change_rows(&b, &shape(&b));
        assert_eq!(rows.rows.len(), 2, "the other changes are written");
        assert_eq!(rows.origins, vec![0, 2]);
        assert_eq!(rows.rows[0][1], BqValue::Null);
        assert_eq!(rows.rows[0][5], BqValue::Text(",v,".into()));
        assert_eq!(rows.quarantined.len(), 1);
        let q = &rows.quarantined[0];
        assert_eq!(q.change, 1);
        assert!(
            q.error.contains("public.t")
                && q.error.contains("column id")
                && q.error.contains("not an integer"),
            "{}",
            q.error
        );
        assert_eq!(unchanged_columns(&b, &shape(&b)), vec!["v".to_owned()]);
    }

    #[test]
    fn a_value_that_is_not_utf8_sets_its_change_aside_with_the_column_and_the_fix() {
        let b = batch(vec![
            update(
                None,
                vec![text("1"), Value::InvalidUtf8(b"caf\xe9".to_vec())],
            ),
            update(None, vec![text("2"), text("caf\u{e9}")]),
        ]);
        let rows = change_rows(&b, &shape(&b));
        assert_eq!(rows.origins, vec![1], "the other change is written");
        let q = &rows.quarantined[0];
        assert_eq!(q.change, 0);
        assert!(
            q.error
                .contains("column v: the value is not valid UTF-8 (4 bytes")
                && q.error.contains("SQL_ASCII")
                && q.error.contains("Fix: correct the value at the source"),
            "{}",
            q.error
        );
    }

    #[test]
    fn rows_refused_downstream_take_only_their_own_change_with_them() {
        let b = batch(vec![
            update(
                Some(vec![text("1"), Value::Null]),
                vec![text("2"), text("x")],
            ),
            update(None, vec![text("3"), text("y")]),
        ]);
        let mut rows = change_rows(&b, &shape(&b));
        assert_eq!(rows.origins, vec![0, 0, 1]);
        rows.set_aside(vec![(1, "refused".into())]);
        assert_eq!(rows.origins, vec![1], "both rows of the key change go");
        assert_eq!(rows.quarantined[0].change, 0);
    }

    #[test]
    fn a_panic_in_one_conversion_sets_that_change_aside() {
        let b = batch(vec![
            update(None, vec![text("1"), text("x")]),
            update(None, vec![text("2"), text("y")]),
        ]);
        let rows = BatchRows::build(&b, |change| {
            assert_ne!(change.new.as_ref().unwrap()[0], text("1"), "boom");
            Ok(vec![vec![BqValue::Null]])
        });
        assert_eq!(rows.origins, vec![1]);
        assert!(rows.quarantined[0].error.contains("internal error"));
        assert!(rows.quarantined[0].error.contains("boom"));
    }
}
