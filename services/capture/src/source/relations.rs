//! The tables seen in the replication stream, with column types resolved to canonical names.

use super::pgoutput::RelationColumn;
use super::shapes::{Placed, Shapes};
use crate::error::{CaptureError, Result};
use pg2bq_core::bq_types::bq_type_for;
use pg2bq_core::column_rules::ColumnRules;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::wire::TableControl;
use pg2bq_core::wire::{ColumnSpec, TableId, Value};
use pg2bq_source::catalog::{self, Catalog, ReplicaIdentity, ResolvedType, SourceTable};
use pg2bq_source::state::shapes::{RecordedShape, ShapeColumn};
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
    /// The generation of the table's BigQuery tables its changes belong to (see
    /// [`super::shapes`]).
    pub generation: u64,
    /// The rows replicated (a backfill copies only these): a SQL condition.
    pub row_filter: Option<String>,
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
            generation: 0,
            row_filter: table.row_filter.clone(),
        }
    }
}

/// Relation cache keyed by table OID, resolving types through the catalogue and placing each
/// shape in its generation.
pub struct Relations {
    client: Arc<tokio_postgres::Client>,
    catalog: Catalog,
    shapes: Shapes,
    /// The columns replicated of each table.
    rules: ColumnRules,
    by_id: HashMap<u32, Arc<RelationInfo>>,
    /// Per relation whose Relation message sent columns the column selection leaves out (no
    /// column lists before PostgreSQL 15): which of the sent columns are kept.
    kept: HashMap<u32, Vec<bool>>,
    /// Commit LSN of the open transaction: the position of its Relation messages.
    position: Lsn,
    /// The shape being recorded (relation and position), in its own task: the capture loop may
    /// drop a call to [`Relations::apply`] half-way, and the recording (a transaction) must
    /// neither be cut short nor run twice.
    observing: Option<(u32, Lsn, tokio::task::JoinHandle<Result<Placed>>)>,
}

impl Relations {
    /// A cache that resolves user-defined types through `client`, records shapes in `shapes`
    /// and leaves out the columns `rules` exclude.
    pub fn new(client: tokio_postgres::Client, shapes: Shapes, rules: ColumnRules) -> Self {
        Relations {
            client: Arc::new(client),
            catalog: Catalog::new(),
            shapes,
            rules,
            by_id: HashMap::new(),
            kept: HashMap::new(),
            position: Lsn(0),
            observing: None,
        }
    }

    /// The values of a tuple of `relation_id` without the columns the column selection leaves
    /// out (PostgreSQL before 15 sends every column; later ones only the published ones).
    pub fn kept(&self, relation_id: u32, values: Vec<Value>) -> Vec<Value> {
        match self.kept.get(&relation_id) {
            Some(mask) => values
                .into_iter()
                .zip(mask.iter().chain(std::iter::repeat(&true)))
                .filter(|(_, keep)| **keep)
                .map(|(value, _)| value)
                .collect(),
            None => values,
        }
    }

    /// A transaction committing at `commit_lsn` begins.
    pub fn begin(&mut self, commit_lsn: Lsn) {
        self.position = commit_lsn;
    }

    /// The table of a relation id, if its Relation message was seen.
    pub fn get(&self, relation_id: u32) -> Result<Arc<RelationInfo>> {
        self.by_id.get(&relation_id).cloned().ok_or_else(|| {
            CaptureError::Decode(format!(
                "change for relation {relation_id} before its Relation message"
            ))
        })
    }

    /// Records a Relation message; returns the new description and the control message that
    /// starts its generation, if it starts one.
    ///
    /// Key columns are the replica identity's ([`ReplicaIdentity::key`]): the flagged columns,
    /// except under REPLICA IDENTITY FULL, where pgoutput flags every column and the primary key
    /// is looked up instead; a table without one then has no key (the writer records it
    /// append-only).
    ///
    /// Decoding does not depend on the catalogue still knowing the relation: a type dropped
    /// since is kept as text, a table dropped since has no key.
    pub async fn apply(
        &mut self,
        relation_id: u32,
        namespace: String,
        name: String,
        replica_identity: u8,
        columns: &[RelationColumn],
    ) -> Result<(Arc<RelationInfo>, Option<TableControl>)> {
        let identity = ReplicaIdentity::from_code(replica_identity);
        let table = TableId {
            schema: namespace,
            table: name,
        };
        let mask: Vec<bool> = columns
            .iter()
            .map(|c| self.rules.keeps(&table, &c.name))
            .collect();
        let columns: Vec<&RelationColumn> = columns
            .iter()
            .zip(&mask)
            .filter(|(_, keep)| **keep)
            .map(|(c, _)| c)
            .collect();
        if mask.iter().all(|keep| *keep) {
            self.kept.remove(&relation_id);
        } else {
            self.kept.insert(relation_id, mask);
        }
        let primary_key = if identity == ReplicaIdentity::Full {
            Some(catalog::primary_key(&self.client, relation_id).await?)
        } else {
            None
        };
        let mut specs = Vec::with_capacity(columns.len());
        let mut shape_columns = Vec::with_capacity(columns.len());
        for column in columns {
            let key = match &primary_key {
                Some(primary_key) => primary_key.contains(&column.name),
                None => column.key,
            };
            let resolved = self.resolve(column).await?;
            let type_modifier = if column.type_modifier >= 0 {
                column.type_modifier
            } else {
                resolved.type_modifier
            };
            shape_columns.push(ShapeColumn {
                name: column.name.clone(),
                type_oid: column.type_oid,
                type_modifier,
                bq_type: bq_type_for(&resolved.name, type_modifier).name().to_owned(),
                pg_type: resolved.name.clone(),
                key,
                attnum: None,
            });
            specs.push(ColumnSpec {
                name: column.name.clone(),
                pg_type: resolved.name,
                type_modifier,
                key,
            });
        }
        let shape = RecordedShape {
            identity: char::from(replica_identity).to_string(),
            columns: shape_columns,
            storage: None,
        };
        let position = self.position;
        if !matches!(&self.observing, Some((id, at, _)) if *id == relation_id && *at == position) {
            let (shapes, client, table) =
                (self.shapes.clone(), Arc::clone(&self.client), table.clone());
            self.observing = Some((
                relation_id,
                position,
                tokio::spawn(async move {
                    shapes
                        .observe(&client, relation_id, &table, shape, position)
                        .await
                }),
            ));
        }
        let (_, _, task) = self.observing.as_mut().expect("observing");
        let outcome = task.await;
        self.observing = None;
        let placed = outcome.map_err(|e| {
            CaptureError::Decode(format!("recording the shape of {table} failed: {e}"))
        })??;
        let row_filter = self.rules.row_filter(&table).map(str::to_owned);
        let info = Arc::new(RelationInfo {
            table,
            columns: specs,
            full_identity: identity == ReplicaIdentity::Full,
            generation: placed.generation,
            row_filter,
        });
        self.by_id.insert(relation_id, Arc::clone(&info));
        Ok((info, placed.control))
    }

    /// The canonical type of a column; a type the catalogue no longer knows (dropped since
    /// the change was written) is kept as text, with a warning, instead of stopping capture.
    async fn resolve(&mut self, column: &RelationColumn) -> Result<ResolvedType> {
        match self
            .catalog
            .resolve_type(&self.client, column.type_oid)
            .await
        {
            Ok(resolved) => Ok(resolved),
            Err(e) if !e.is_transient() => {
                tracing::warn!(
                    column = %column.name,
                    type_oid = column.type_oid,
                    error = %e,
                    "the column's type is gone from the catalogue (dropped after the change was \
                     written): its values are kept as text"
                );
                Ok(ResolvedType {
                    name: "text".to_owned(),
                    type_modifier: -1,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Fills the unchanged TOAST values of an update that changed the row's key (PostgreSQL sent
    /// the old key, `old`) under a replica identity other than FULL: the writer cannot take them
    /// from an older change of the new key, which has none, so they are read from the source by
    /// the new key. The value read may be newer than the update; every later change of the row
    /// follows and wins, so the mirror ends equal to the source. A row gone since keeps the
    /// markers (a later change removed or moved it).
    pub async fn fill_moved_toast(
        &self,
        relation_id: u32,
        info: &RelationInfo,
        old: Option<&[Value]>,
        new: &mut [Value],
    ) -> Result<()> {
        let Some(old) = old.filter(|_| !info.full_identity) else {
            return Ok(());
        };
        if !new.contains(&Value::UnchangedToast) {
            return Ok(());
        }
        let mut key_names = Vec::new();
        let mut key_values: Vec<Option<String>> = Vec::new();
        for ((column, value), before) in info.columns.iter().zip(new.iter()).zip(old) {
            if !column.key {
                continue;
            }
            let value = if *value == Value::UnchangedToast {
                before
            } else {
                value
            };
            key_names.push(column.name.as_str());
            key_values.push(match value {
                Value::Text(text) => Some(text.clone()),
                _ => None,
            });
        }
        let wanted: Vec<usize> = new
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == Value::UnchangedToast)
            .map(|(i, _)| i)
            .collect();
        let declared = self.declared_types(relation_id, &key_names).await?;
        let select: Vec<String> = wanted
            .iter()
            // As bytes: text that is not UTF-8 (SQL_ASCII) travels as such, like the stream's.
            .map(|&i| {
                format!(
                    "pg_catalog.textsend({}::text)",
                    quote_ident(&info.columns[i].name)
                )
            })
            .collect();
        let filter: Vec<String> = key_names
            .iter()
            .enumerate()
            .map(|(n, name)| {
                format!(
                    "{} IS NOT DISTINCT FROM ${}::text::{}",
                    quote_ident(name),
                    n + 1,
                    declared[n]
                )
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            select.join(", "),
            catalog::tables::quoted(&info.table),
            filter.join(" AND ")
        );
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = key_values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let row =
            self.client
                .query_opt(sql.as_str(), &params)
                .await
                .map_err(CaptureError::postgres(format!(
                    "reading the unchanged TOAST values of {} after its key changed",
                    info.table
                )))?;
        if let Some(row) = row {
            for (n, &i) in wanted.iter().enumerate() {
                let bytes: Option<Vec<u8>> = row.get(n);
                new[i] = bytes.map_or(Value::Null, |b| Value::from_bytes(&b));
            }
        }
        Ok(())
    }

    /// The declared types (`format_type`) of columns of a table, in the order of `names`.
    async fn declared_types(&self, relation_id: u32, names: &[&str]) -> Result<Vec<String>> {
        let mut types = Vec::with_capacity(names.len());
        for name in names {
            let row = self
                .client
                .query_one(
                    "SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute \
                     WHERE attrelid = $1 AND attname = $2",
                    &[&relation_id, name],
                )
                .await
                .map_err(CaptureError::postgres(format!(
                    "looking up the type of column {name} of relation {relation_id}"
                )))?;
            types.push(row.get(0));
        }
        Ok(types)
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
            generation: 0,
            row_filter: None,
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
