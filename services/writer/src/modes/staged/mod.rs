//! The staged merge strategy: rows go to a change table, and a MERGE folds the newest change per
//! key of the change table into the mirror table.
//!
//! The change table keeps every change, so the newest change per key is always known, whatever
//! order the changes arrived in: a late, older UPSERT never resurrects a deleted row, and a
//! duplicate changes nothing. The MERGE runs on a timer (locally) or when `/merge` is called
//! (Cloud Scheduler in GCP).
//!
//! - this file: the mode (its two tables, the write of a batch, the `/merge` round);
//! - [`statements`]: the MERGE and pruning SQL;
//! - [`merger`]: which tables wait for a MERGE, and running it.

pub mod merger;
pub mod statements;

use super::rows::change_rows;
use super::sink::RowSink;
use super::{WriteMode, Written};
use crate::error::Result;
use crate::row_layout::RowLayout;
use crate::shape::{TableShape, is_metadata};
use crate::tables::{TableRegistry, TableSpec};
use futures::future::BoxFuture;
use merger::Merger;
use pg2bq_bigquery::rest::{RestClient, TableOptions};
use pg2bq_core::bq_naming::{DatasetLayout, KEY_COLUMN_DESCRIPTION};
use pg2bq_core::wire::ChangeBatch;
use statements::MergeTarget;
use std::sync::Arc;
use std::time::Duration;

/// The staged merge strategy.
pub struct Staged {
    tables: Arc<TableRegistry>,
    sink: RowSink,
    merger: Arc<Merger>,
}

impl Staged {
    /// Writes through `sink` into tables made sure of by `tables`, and merges with `rest` the
    /// tables of `layout`, pruning superseded change rows older than `retention` (zero: never).
    /// With a non-zero `merge_interval`, merges the tables written since the last MERGE that
    /// often in the background.
    pub fn start(
        rest: RestClient,
        layout: DatasetLayout,
        tables: Arc<TableRegistry>,
        sink: RowSink,
        retention: Duration,
        merge_interval: Duration,
    ) -> Self {
        let merger = Arc::new(Merger::new(rest, layout, retention));
        if !merge_interval.is_zero() {
            Arc::clone(&merger).spawn_timer(merge_interval);
        }
        Staged {
            tables,
            sink,
            merger,
        }
    }

    /// The mirror table and the change table of `shape`. The change table's key columns carry
    /// [`KEY_COLUMN_DESCRIPTION`], so that any writer can merge it later; the mirror table
    /// declares its primary key (`NOT ENFORCED`).
    fn tables_of(&self, shape: &TableShape) -> [TableSpec; 2] {
        let keys = shape.key_names();
        let mut change_fields = self.tables.fields(&shape.change_fields());
        for field in change_fields.iter_mut().filter(|f| keys.contains(&f.name)) {
            field.description = Some(KEY_COLUMN_DESCRIPTION.to_owned());
        }
        [
            TableSpec {
                table: shape.target.clone(),
                fields: self.tables.fields(&shape.target_fields()),
                options: TableOptions {
                    clustering: shape.clustering(),
                    primary_key: keys,
                    max_staleness: None,
                },
            },
            TableSpec {
                table: shape.target.change_table(),
                fields: change_fields,
                options: TableOptions::default(),
            },
        ]
    }
}

impl WriteMode for Staged {
    fn write<'a>(
        &'a self,
        batch: &'a ChangeBatch,
        shape: &'a TableShape,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move {
            let rows = change_rows(batch, shape)?;
            let [_, change_columns] = self.tables.ensure(self.tables_of(shape)).await?;
            let layout = RowLayout::new(&change_columns, &shape.change_fields())?;
            let written = self
                .sink
                .append(&shape.target.change_table(), &layout, &rows)
                .await?;
            let columns = change_columns
                .iter()
                .filter(|c| !is_metadata(&c.name))
                .map(|c| c.name.clone())
                .collect();
            let target = MergeTarget {
                table: shape.target.clone(),
                keys: shape.key_names(),
                columns,
            };
            self.merger.mark(target).await;
            Ok(written)
        })
    }

    /// Merges every mirror table of the layout's datasets (see [`Merger::merge_all`]).
    fn merge_round(&self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(self.merger.merge_all())
    }
}
