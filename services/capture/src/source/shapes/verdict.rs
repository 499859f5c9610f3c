//! How a table's new shape is followed ([`classify`]): in place, by a copy, or by a new
//! generation; and the catalogue facts the decision needs.

use crate::error::{CaptureError, Result};
use pg2bq_core::bq_types::bq_type_for;
use pg2bq_source::catalog::SourceTable;
use pg2bq_source::state::shapes::{RecordedShape, ShapeColumn, ShapeRecord};
use std::collections::HashMap;
use tokio_postgres::Client;

/// What the catalogue says now about a relation: enough to tell whether existing rows hold
/// values the stream never sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Per column name: its `attnum`, and whether existing rows may hold a non-NULL value that
    /// was never written to WAL (`atthasmissing` or a default).
    pub columns: HashMap<String, (i16, bool)>,
    /// Whether the table's storage (its or its partitions' files) differs from when the
    /// record was made: PostgreSQL rewrote it.
    pub rewritten: bool,
    /// The storage now, recorded with a new shape.
    pub storage: Option<String>,
}

/// How a new shape of a table is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed that BigQuery needs to know beyond the batch's columns.
    InPlace,
    /// Existing rows may differ from what was replicated: copy the table again.
    Copy(String),
    /// BigQuery cannot follow in place: new tables, and a copy.
    NewGeneration(String),
}

impl Verdict {
    fn rank(&self) -> u8 {
        match self {
            Verdict::InPlace => 0,
            Verdict::Copy(_) => 1,
            Verdict::NewGeneration(_) => 2,
        }
    }

    fn worse(self, other: Verdict) -> Verdict {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// Classifies the change from `old` (recorded) to `new` (relation `relation_id`).
pub fn classify(
    old: &ShapeRecord,
    relation_id: u32,
    new: &RecordedShape,
    facts: &Facts,
) -> Verdict {
    if old.dropped || old.relation_id != relation_id {
        return Verdict::NewGeneration(format!(
            "{} is another table than the one replicated under that name before (it was \
             dropped and created again, or renamed into that name)",
            old.table
        ));
    }
    if old.shape.keys() != new.keys() {
        return Verdict::NewGeneration(format!(
            "the key of {} changed from ({}) to ({})",
            old.table,
            old.shape.keys().join(", "),
            new.keys().join(", ")
        ));
    }
    let mut verdict = Verdict::InPlace;
    for before in &old.shape.columns {
        let Some(after) = new.columns.iter().find(|c| c.name == before.name) else {
            return Verdict::NewGeneration(format!(
                "column {} of {} was dropped or renamed",
                before.name, old.table
            ));
        };
        let attnum = facts.columns.get(&after.name).map(|(n, _)| *n);
        if before.attnum.is_some() && attnum.is_some() && before.attnum != attnum {
            return Verdict::NewGeneration(format!(
                "column {} of {} was dropped and added again",
                before.name, old.table
            ));
        }
        if before.bq_type != after.bq_type {
            return Verdict::NewGeneration(format!(
                "column {} of {} changed type from {} to {} (BigQuery {} to {})",
                before.name,
                old.table,
                before.pg_type,
                after.pg_type,
                before.bq_type,
                after.bq_type
            ));
        }
        let retyped =
            before.type_oid != after.type_oid || before.type_modifier != after.type_modifier;
        if retyped && facts.rewritten {
            verdict = verdict.worse(Verdict::Copy(format!(
                "column {} of {} changed type and PostgreSQL rewrote the table (values may \
                 have changed, e.g. rounded)",
                before.name, old.table
            )));
        }
    }
    for added in new
        .columns
        .iter()
        .filter(|c| !old.shape.columns.iter().any(|o| o.name == c.name))
    {
        // A column the catalogue does not show (yet, or any more) may have been filled too:
        // when in doubt, copy.
        let filled = facts.columns.get(&added.name).is_none_or(|(_, f)| *f);
        if filled || facts.rewritten {
            verdict = verdict.worse(Verdict::Copy(format!(
                "column {} of {} was added with a default: existing rows hold a value PostgreSQL \
                 did not write to WAL",
                added.name, old.table
            )));
        }
    }
    verdict
}

/// The shape of a table as the catalogue describes it (what its Relation message will send).
pub fn shape_of_table(table: &SourceTable) -> RecordedShape {
    RecordedShape {
        identity: match table.replica_identity {
            pg2bq_source::catalog::ReplicaIdentity::Default => "d",
            pg2bq_source::catalog::ReplicaIdentity::Full => "f",
            pg2bq_source::catalog::ReplicaIdentity::Index => "i",
            pg2bq_source::catalog::ReplicaIdentity::Nothing => "n",
        }
        .to_owned(),
        columns: table
            .columns
            .iter()
            .map(|c| ShapeColumn {
                name: c.spec.name.clone(),
                type_oid: c.type_oid,
                type_modifier: c.spec.type_modifier,
                pg_type: c.spec.pg_type.clone(),
                bq_type: bq_type_for(&c.spec.pg_type, c.spec.type_modifier)
                    .name()
                    .to_owned(),
                key: c.spec.key,
                attnum: Some(c.attnum),
            })
            .collect(),
        storage: None,
    }
}

/// The catalogue's facts about relation `relation_id` now (empty if it is gone).
pub(super) async fn facts(client: &Client, relation_id: u32) -> Result<Facts> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.attnum, a.atthasmissing OR a.atthasdef \
             FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&relation_id],
        )
        .await
        .map_err(CaptureError::postgres("reading a table's columns"))?;
    let storage = storage(client, relation_id).await?;
    Ok(Facts {
        columns: rows
            .iter()
            .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
            .collect(),
        rewritten: false,
        storage,
    })
}

/// The storage of a table: its file, or its partitions' (`oid:relfilenode` pairs); `None` if
/// the table is gone. Any rewrite (and any partition attached, detached, dropped or truncated)
/// changes it.
pub async fn storage(client: &Client, relation_id: u32) -> Result<Option<String>> {
    let row = client
        .query_one(
            "SELECT string_agg(c.oid::text || ':' || c.relfilenode::text, ',' ORDER BY c.oid) \
             FROM pg_catalog.pg_class c \
             WHERE (c.oid = $1 AND c.relkind = 'r') \
                OR c.oid IN (SELECT p.relid FROM pg_catalog.pg_partition_tree($1::oid::regclass) p \
                             WHERE p.isleaf AND p.relid <> $1::oid::regclass)",
            &[&relation_id],
        )
        .await
        .map_err(CaptureError::postgres("reading a table's storage"))?;
    Ok(row.get(0))
}
