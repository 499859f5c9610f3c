//! What a table's new shape means for its BigQuery tables, and the generation each change,
//! copy and control message belongs to.
//!
//! When a Relation message brings a shape that differs from the one recorded for the table
//! ([`pg2bq_source::state::shapes`]), the change is classified ([`classify`]):
//!
//! - in place: a nullable column added without a default (existing rows hold NULL in it), a
//!   type widened without PostgreSQL rewriting the table, a new replica identity with the same
//!   key. The writer adds the column; nothing else happens.
//! - copy again: existing rows changed without WAL for them, or may have (a column added with
//!   a default, which PostgreSQL fills without writing the rows; a type change that rewrote the
//!   table, which may have rounded values). The table is copied again; the copy's sweep removes
//!   nothing but rows deleted since.
//! - new generation: BigQuery cannot follow the table in place (a column dropped, renamed, or
//!   changed to another BigQuery type; a new key; another table under the name). The writer
//!   drops the table's BigQuery tables at the control message that starts the generation, and
//!   the table is copied again into new ones.
//!
//! Under the native merge strategy a copy cannot remove rows (it has no sweep), so every copy
//! again starts a new generation.
//!
//! Every decision happens under an advisory lock per table, reading the records afresh, so the
//! stream, the backfill and the maintenance task never start two generations for one event.

use crate::error::{CaptureError, Result};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::wire::{ControlAction, TableControl, TableId};
use pg2bq_source::catalog::SourceTable;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::shapes::{RecordedShape, ShapeRecord, next_generation, record_at};
use tokio_postgres::Client;

mod verdict;

use verdict::facts;
pub use verdict::{Verdict, classify, shape_of_table, storage};

/// The generation a change, a copy or a control message belongs to, and the control message
/// to publish first when it starts one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The generation.
    pub generation: u64,
    /// The control message that starts it, to publish before anything of it.
    pub control: Option<TableControl>,
    /// The record made, if one was.
    pub record: Option<ShapeRecord>,
}

/// How many times (50 ms apart) a Relation message's table is read again from the catalogue
/// until the catalogue shows the message's columns.
const VISIBILITY_RETRIES: usize = 40;

/// The shape records of a stream, and the decisions taken on them.
#[derive(Debug, Clone)]
pub struct Shapes {
    state: StateStore,
    native: bool,
}

impl Shapes {
    /// Decisions recorded in `state`; `native`: the writer mirrors with native CDC, which
    /// cannot sweep, so copies start new generations.
    pub fn new(state: StateStore, native: bool) -> Self {
        Shapes { state, native }
    }

    /// Whether finished copies are swept (not under the native strategy).
    pub fn sweeps(&self) -> bool {
        !self.native
    }

    /// The table's shape as of a Relation message in the transaction committing at `lsn`: the
    /// generation of the changes that follow, and whether it starts one.
    pub async fn observe(
        &self,
        client: &Client,
        relation_id: u32,
        table: &TableId,
        mut shape: RecordedShape,
        lsn: Lsn,
    ) -> Result<Placed> {
        // The walsender may send a transaction before the committing backend has made it
        // visible to other sessions: until the catalogue shows every column of the Relation
        // message, it is read again (briefly; an added column it still does not show is taken
        // as filled, see `classify`).
        let mut facts = facts(client, relation_id).await?;
        for _ in 0..VISIBILITY_RETRIES {
            if shape
                .columns
                .iter()
                .all(|c| facts.columns.contains_key(&c.name))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            facts = verdict::facts(client, relation_id).await?;
        }
        for column in &mut shape.columns {
            column.attnum = facts.columns.get(&column.name).map(|(n, _)| *n);
        }
        shape.storage = facts.storage.clone();
        self.locked(client, table, |records| {
            let Some(current) = record_at(records, relation_id, lsn) else {
                return Decision::unknown(records, table, lsn, relation_id, shape);
            };
            let newest_of_relation = records
                .iter()
                .filter(|r| r.relation_id == relation_id)
                .map(|r| r.from_lsn)
                .max()
                .unwrap_or(lsn);
            if current.shape.same_as(&shape) && !current.dropped || lsn < newest_of_relation {
                // The shape recorded for this position; when a replay reaches the transaction
                // that started a generation, its control message goes out again (the writer
                // takes it once).
                let resend = first_of_generation(records, current) == lsn;
                return Decision::keep(records, current, resend);
            }
            let mut facts = facts.clone();
            facts.rewritten = current.shape.storage.is_some()
                && facts.storage.is_some()
                && current.shape.storage != facts.storage;
            match classify(current, relation_id, &shape, &facts) {
                Verdict::InPlace => Decision::record(
                    table,
                    current.generation,
                    lsn,
                    relation_id,
                    shape,
                    None,
                    false,
                ),
                Verdict::Copy(reason) if !self.native => Decision::record(
                    table,
                    current.generation,
                    lsn,
                    relation_id,
                    shape,
                    Some(reason),
                    true,
                ),
                Verdict::Copy(reason) | Verdict::NewGeneration(reason) => Decision::start(
                    records,
                    table,
                    lsn,
                    relation_id,
                    shape,
                    reason,
                    ControlAction::NewGeneration,
                ),
            }
        })
        .await
    }

    /// The generation the copy of `table` from the snapshot at `consistent_point` belongs to:
    /// the recorded one there, or a new one if the table under that name is not the one
    /// recorded (its control message is then to be published before the rows).
    pub async fn for_copy(
        &self,
        client: &Client,
        table: &SourceTable,
        consistent_point: Lsn,
    ) -> Result<Placed> {
        let mut shape = shape_of_table(table);
        shape.storage = storage(client, table.oid).await?;
        self.locked(client, &table.id, |records| {
            match record_at(records, table.oid, consistent_point) {
                // The control message of the generation goes out again with every copy of it:
                // the copy's rows wait for it at the writer, and it may have been lost with a
                // capture stopped between recording and publishing it.
                Some(current) if !current.dropped => Decision::keep(records, current, true),
                _ => {
                    let mut decision =
                        Decision::unknown(records, &table.id, consistent_point, table.oid, shape);
                    // This is the copy: no other.
                    decision.recopy = false;
                    decision
                }
            }
        })
        .await
    }

    /// Records that the table of `record` left its name at `lsn` (dropped, or renamed): a
    /// generation with no table, whose control message drops the BigQuery tables.
    pub async fn gone(
        &self,
        client: &Client,
        record: &ShapeRecord,
        reason: String,
        lsn: Lsn,
    ) -> Result<Placed> {
        self.locked(client, &record.table, |records| {
            match records.iter().max_by_key(|r| (r.generation, r.from_lsn)) {
                Some(newest) if newest.relation_id == record.relation_id && !newest.dropped => {
                    let mut decision = Decision::start(
                        records,
                        &record.table,
                        lsn,
                        record.relation_id,
                        newest.shape.clone(),
                        reason,
                        ControlAction::Dropped,
                    );
                    if let Some(record) = &mut decision.record {
                        record.dropped = true;
                    }
                    decision
                }
                // Someone else recorded it first, or another table took the name.
                _ => Decision::nothing(),
            }
        })
        .await
    }

    /// The table of relation `relation_id` is to be copied again because of `reason` (found
    /// outside the stream, at `lsn`). Under the native strategy, which cannot sweep, that is a
    /// new generation, whose record and control message are returned; otherwise `None` (the
    /// caller forgets the table's backfill plan).
    pub async fn copy_again(
        &self,
        client: &Client,
        relation_id: u32,
        table: &TableId,
        reason: &str,
        lsn: Lsn,
    ) -> Result<Option<Placed>> {
        if !self.native {
            return Ok(None);
        }
        let placed = self
            .locked(client, table, |records| {
                match records
                    .iter()
                    .filter(|r| r.relation_id == relation_id && !r.dropped)
                    .max_by_key(|r| (r.generation, r.from_lsn))
                {
                    Some(newest) => Decision::start(
                        records,
                        table,
                        lsn,
                        relation_id,
                        newest.shape.clone(),
                        reason.to_owned(),
                        ControlAction::NewGeneration,
                    ),
                    None => Decision::nothing(),
                }
            })
            .await?;
        Ok(Some(placed))
    }

    /// Runs `decide` on the table's records under the table's advisory lock, and records its
    /// decision in the same transaction.
    async fn locked(
        &self,
        client: &Client,
        table: &TableId,
        decide: impl FnOnce(&[ShapeRecord]) -> Decision,
    ) -> Result<Placed> {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(CaptureError::postgres("recording a table shape"))?;
        let outcome = async {
            client
                .execute(
                    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pg2bq shapes ' || $1 || ' ' || $2))",
                    &[&self.state.slot(), &table.to_string()],
                )
                .await
                .map_err(CaptureError::postgres("locking a table's shapes"))?;
            let records = self.state.shapes_of(client, table).await?;
            let decision = decide(&records);
            if let Some(record) = &decision.record {
                self.state
                    .record_shape(client, record, decision.recopy)
                    .await?;
                if let Some(reason) = &record.reason {
                    tracing::warn!(
                        table = %table,
                        generation = record.generation,
                        new_generation = decision.control.is_some(),
                        dropped = record.dropped,
                        copy_again = decision.recopy,
                        reason = %reason,
                        "the table's shape changed"
                    );
                } else {
                    tracing::info!(
                        table = %table,
                        generation = record.generation,
                        from_lsn = %record.from_lsn,
                        columns = record.shape.columns.len(),
                        first = records.is_empty(),
                        "recorded the table's shape (followed in place)"
                    );
                }
            }
            Ok::<_, CaptureError>(decision.placed())
        }
        .await;
        let ended = pg2bq_source::transaction::end(client, outcome.is_ok())
            .await
            .map_err(CaptureError::postgres("recording a table shape"));
        let placed = outcome?;
        ended?;
        Ok(placed)
    }
}

/// What [`Shapes::locked`] records and answers.
struct Decision {
    record: Option<ShapeRecord>,
    recopy: bool,
    generation: u64,
    control: Option<TableControl>,
}

impl Decision {
    fn nothing() -> Self {
        Decision {
            record: None,
            recopy: false,
            generation: 0,
            control: None,
        }
    }

    fn record(
        table: &TableId,
        generation: u64,
        lsn: Lsn,
        relation_id: u32,
        shape: RecordedShape,
        reason: Option<String>,
        recopy: bool,
    ) -> Self {
        Decision {
            record: Some(ShapeRecord {
                table: table.clone(),
                generation,
                from_lsn: lsn,
                relation_id,
                shape,
                dropped: false,
                reason,
            }),
            recopy,
            generation,
            control: None,
        }
    }

    /// A new generation from `lsn`, with its control message (`action`) and a copy.
    fn start(
        records: &[ShapeRecord],
        table: &TableId,
        lsn: Lsn,
        relation_id: u32,
        shape: RecordedShape,
        reason: String,
        action: ControlAction,
    ) -> Self {
        let generation = next_generation(records);
        let mut decision = Decision::record(
            table,
            generation,
            lsn,
            relation_id,
            shape,
            Some(reason.clone()),
            true,
        );
        decision.control = Some(control(action, reason));
        decision
    }

    /// The recorded `current`; with `resend`, the control message of its generation again
    /// (if a control message started it).
    /// A relation no record of the table describes at `lsn`: the table's first shape, or a new
    /// table under a name replicated before (a new generation).
    fn unknown(
        records: &[ShapeRecord],
        table: &TableId,
        lsn: Lsn,
        relation_id: u32,
        shape: RecordedShape,
    ) -> Self {
        if records.is_empty() {
            return Decision::record(table, 0, lsn, relation_id, shape, None, false);
        }
        let reason = format!("{table} is a new table under a name replicated before");
        Decision::start(
            records,
            table,
            lsn,
            relation_id,
            shape,
            reason,
            ControlAction::NewGeneration,
        )
    }

    fn keep(records: &[ShapeRecord], current: &ShapeRecord, resend: bool) -> Self {
        let first = records
            .iter()
            .filter(|r| r.generation == current.generation)
            .min_by_key(|r| r.from_lsn)
            .unwrap_or(current);
        let started = current.generation > 0 && first.reason.is_some();
        let action = if first.dropped {
            ControlAction::Dropped
        } else {
            ControlAction::NewGeneration
        };
        Decision {
            record: None,
            recopy: false,
            generation: current.generation,
            control: (resend && started)
                .then(|| control(action, first.reason.clone().unwrap_or_default())),
        }
    }

    fn placed(self) -> Placed {
        Placed {
            generation: self.generation,
            control: self.control,
            record: self.record,
        }
    }
}

/// Where the generation of `record` started (its first record's position).
fn first_of_generation(records: &[ShapeRecord], record: &ShapeRecord) -> Lsn {
    records
        .iter()
        .filter(|r| r.generation == record.generation)
        .map(|r| r.from_lsn)
        .min()
        .unwrap_or(record.from_lsn)
}

fn control(action: ControlAction, reason: String) -> TableControl {
    TableControl {
        action,
        reason,
        issued_at_us: pg2bq_core::civil::now_us(),
    }
}

#[cfg(test)]
mod tests;
