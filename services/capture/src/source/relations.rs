//! The tables seen in the replication stream, with column types resolved to canonical names.

use super::pgoutput::RelationColumn;
use crate::error::{CaptureError, Result};
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::pg_types::builtin_type_name;
use pg2bq_core::wire::{ColumnSpec, TableId, Value};
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

/// Canonical name and effective type modifier of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResolvedType {
    name: String,
    type_modifier: i32,
}

/// Relation cache keyed by table OID, and a cache of resolved user-defined types.
pub struct Relations {
    catalog: tokio_postgres::Client,
    by_id: HashMap<u32, Arc<RelationInfo>>,
    types: HashMap<u32, ResolvedType>,
}

impl Relations {
    /// A cache that resolves user-defined types through `catalog`.
    pub fn new(catalog: tokio_postgres::Client) -> Self {
        Relations {
            catalog,
            by_id: HashMap::new(),
            types: HashMap::new(),
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
    /// Key columns are the replica identity's, which is the primary key by default. Under
    /// REPLICA IDENTITY FULL pgoutput flags every column, so the primary key is looked up instead;
    /// a table without one then has no key (the writer records it append-only).
    pub async fn apply(
        &mut self,
        relation_id: u32,
        namespace: String,
        name: String,
        replica_identity: u8,
        columns: &[RelationColumn],
    ) -> Result<Arc<RelationInfo>> {
        let primary_key = if replica_identity == b'f' {
            Some(primary_key_columns(&self.catalog, relation_id).await?)
        } else {
            None
        };
        let mut specs = Vec::with_capacity(columns.len());
        for column in columns {
            let key = match &primary_key {
                Some(primary_key) => primary_key.contains(&column.name),
                None => column.key,
            };
            let resolved = self.resolve(column.type_oid).await?;
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
            full_identity: replica_identity == b'f',
        });
        self.by_id.insert(relation_id, Arc::clone(&info));
        Ok(info)
    }

    /// Describes a table from the catalogue, with columns as pgoutput sends them: in attribute
    /// order, without dropped or generated columns; key columns are the primary key's.
    pub async fn describe(&mut self, table: &TableId) -> Result<Arc<RelationInfo>> {
        let name = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.table)
        );
        let rows = self
            .catalog
            .query(
                "SELECT a.attname::text, a.atttypid, a.atttypmod,                         COALESCE(a.attnum = ANY(i.indkey), false)                  FROM pg_catalog.pg_attribute a                  LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND i.indisprimary                  WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped                    AND a.attgenerated = '' ORDER BY a.attnum",
                &[&name],
            )
            .await
            .map_err(CaptureError::postgres(format!("describing {table}")))?;
        let mut columns = Vec::with_capacity(rows.len());
        for row in rows {
            let resolved = self.resolve(row.get(1)).await?;
            let type_modifier: i32 = row.get(2);
            columns.push(ColumnSpec {
                name: row.get(0),
                pg_type: resolved.name,
                type_modifier: if type_modifier >= 0 {
                    type_modifier
                } else {
                    resolved.type_modifier
                },
                key: row.get(3),
            });
        }
        Ok(Arc::new(RelationInfo {
            table: table.clone(),
            columns,
            full_identity: false,
        }))
    }

    async fn resolve(&mut self, type_oid: u32) -> Result<ResolvedType> {
        if let Some(name) = builtin_type_name(type_oid) {
            return Ok(ResolvedType {
                name: name.to_owned(),
                type_modifier: -1,
            });
        }
        if let Some(resolved) = self.types.get(&type_oid) {
            return Ok(resolved.clone());
        }
        let resolved = resolve_from_catalog(&self.catalog, type_oid).await?;
        self.types.insert(type_oid, resolved.clone());
        Ok(resolved)
    }
}

/// Names of the primary key columns of a table (empty if it has none).
async fn primary_key_columns(
    catalog: &tokio_postgres::Client,
    relation_id: u32,
) -> Result<Vec<String>> {
    let rows = catalog
        .query(
            "SELECT a.attname::text FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1 AND i.indisprimary",
            &[&relation_id],
        )
        .await
        .map_err(CaptureError::postgres(format!("looking up the primary key of relation {relation_id}")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Follows domains to their base type and arrays to their element type.
async fn resolve_from_catalog(
    catalog: &tokio_postgres::Client,
    type_oid: u32,
) -> Result<ResolvedType> {
    let mut oid = type_oid;
    let mut type_modifier = -1;
    let mut array_depth = 0;
    loop {
        if let Some(name) = builtin_type_name(oid) {
            return Ok(ResolvedType {
                name: format!("{name}{}", "[]".repeat(array_depth)),
                type_modifier,
            });
        }
        let row = catalog
            .query_opt(
                "SELECT typtype::text, typname::text, typbasetype, typelem, typcategory::text, typtypmod \
                 FROM pg_catalog.pg_type WHERE oid = $1",
                &[&oid],
            )
            .await
            .map_err(CaptureError::postgres(format!("looking up type {oid}")))?
            .ok_or_else(|| CaptureError::Decode(format!("type {oid} is not in pg_type")))?;
        let typtype: String = row.get(0);
        let typname: String = row.get(1);
        let category: String = row.get(4);
        match (typtype.as_str(), category.as_str()) {
            ("d", _) => {
                let domain_modifier: i32 = row.get(5);
                if type_modifier < 0 {
                    type_modifier = domain_modifier;
                }
                oid = row.get(2);
            }
            (_, "A") => {
                array_depth += 1;
                oid = row.get(3);
            }
            ("e", _) => return Ok(named("enum", array_depth, type_modifier)),
            _ => return Ok(named(&typname, array_depth, type_modifier)),
        }
    }
}

fn named(name: &str, array_depth: usize, type_modifier: i32) -> ResolvedType {
    ResolvedType {
        name: format!("{name}{}", "[]".repeat(array_depth)),
        type_modifier,
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
