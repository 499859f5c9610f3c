//! The tables seen in the replication stream, with column types resolved to canonical names.

use super::pgoutput::RelationColumn;
use crate::error::{CaptureError, Result};
use pg2bq_core::wire::{ColumnSpec, TableId, Value};
use pg2bq_source::catalog::{self, Catalog, ReplicaIdentity, SourceTable};
use std::collections::HashMap;
use std::sync::Arc;

/// A table as the stream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationInfo {
    /// Schema and name.
    pub table: TableId,
    /// Columns with canonical type names.
    pub columns: Vec<ColumnSpec>,
    /// REPLICA IDENTITY FULL: an update's old tuple holds every column's value.
    pub full_identity: bool,
}

impl RelationInfo {
    /// Fills the unchanged TOAST values of an update's new tuple from its old tuple, which holds
    /// every value (detoasted) under REPLICA IDENTITY FULL. Under another identity the old tuple
    /// has the key at most, so the markers stay (and the writer refuses them with this fix).
    pub fn fill_unchanged_toast(&self, new: &mut [Value], old: Option<&[Value]>) {
        let Some(old) = old.filter(|_| self.full_identity) else {
            return;
        };
        for (value, before) in new.iter_mut().zip(old) {
            if *value == Value::UnchangedToast && *before != Value::UnchangedToast {
                *value = before.clone();
            }
        }
    }
}

impl From<&SourceTable> for RelationInfo {
    /// A table as the catalogue describes it: the same columns and keys the stream sends.
    fn from(table: &SourceTable) -> Self {
        RelationInfo {
            table: table.id.clone(),
            columns: table.column_specs(),
            full_identity: table.replica_identity == ReplicaIdentity::Full,
        }
    }
}

/// Relation cache keyed by table OID, resolving types through the catalogue.
pub struct Relations {
    client: tokio_postgres::Client,
    catalog: Catalog,
    by_id: HashMap<u32, Arc<RelationInfo>>,
}

impl Relations {
    /// A cache that resolves user-defined types through `catalog`.
    pub fn new(client: tokio_postgres::Client) -> Self {
        Relations {
            client,
            catalog: Catalog::new(),
            by_id: HashMap::new(),
        }
    }

    /// The table of a relation id, if its Relation message was seen.
    pub fn get(&self, relation_id: u32) -> Result<Arc<RelationInfo>> {
        self.by_id.get(&relation_id).cloned().ok_or_else(|| {
            CaptureError::Decode(format!(
                "change for relation {relation_id} before its Relation message"
            ))
        })
    }

    /// Records a Relation message; returns the new description.
    ///
    /// Key columns are the replica identity's ([`ReplicaIdentity::key`]): the flagged columns,
    /// except under REPLICA IDENTITY FULL, where pgoutput flags every column and the primary key
    /// is looked up instead; a table without one then has no key (the writer records it
    /// append-only).
    pub async fn apply(
        &mut self,
        relation_id: u32,
        namespace: String,
        name: String,
        replica_identity: u8,
        columns: &[RelationColumn],
    ) -> Result<Arc<RelationInfo>> {
        let identity = ReplicaIdentity::from_code(replica_identity);
        let primary_key = if identity == ReplicaIdentity::Full {
            Some(catalog::primary_key(&self.client, relation_id).await?)
        } else {
            None
        };
        let mut specs = Vec::with_capacity(columns.len());
        for column in columns {
            let key = match &primary_key {
                Some(primary_key) => primary_key.contains(&column.name),
                None => column.key,
            };
            let resolved = self
                .catalog
                .resolve_type(&self.client, column.type_oid)
                .await?;
            let type_modifier = if column.type_modifier >= 0 {
                column.type_modifier
            } else {
                resolved.type_modifier
            };
            specs.push(ColumnSpec {
                name: column.name.clone(),
                pg_type: resolved.name,
                type_modifier,
                key,
            });
        }
        let info = Arc::new(RelationInfo {
            table: TableId {
                schema: namespace,
                table: name,
            },
            columns: specs,
            full_identity: identity == ReplicaIdentity::Full,
        });
        self.by_id.insert(relation_id, Arc::clone(&info));
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(full_identity: bool) -> RelationInfo {
        RelationInfo {
            table: TableId {
                schema: "public".into(),
                table: "t".into(),
            },
            columns: Vec::new(),
            full_identity,
        }
    }

    #[test]
    fn unchanged_toast_is_filled_from_a_full_old_tuple_only() {
        let old = vec![
            Value::Text("1".into()),
            Value::Text("big".into()),
            Value::Null,
        ];
        let update = || {
            vec![
                Value::Text("1".into()),
                Value::UnchangedToast,
                Value::Text("x".into()),
            ]
        };
        let mut new = update();
        info(true).fill_unchanged_toast(&mut new, Some(&old));
        assert_eq!(new[1], Value::Text("big".into()));
        assert_eq!(new[2], Value::Text("x".into()), "changed values stay");
        let mut new = update();
        info(false).fill_unchanged_toast(&mut new, Some(&old));
        assert_eq!(
            new[1],
            Value::UnchangedToast,
            "a key-only old tuple fills nothing"
        );
        let mut new = update();
        info(true).fill_unchanged_toast(&mut new, None);
        assert_eq!(new[1], Value::UnchangedToast);
    }
}
