//! Source tables as pg2bq replicates them: the columns pgoutput sends, in its order, with
//! canonical types and the key the stream identifies rows by.

use pg2bq_core::bq_naming::collisions::SourceNames;
use pg2bq_core::wire::{ColumnSpec, TableId};
use serde::Serialize;

/// A table's REPLICA IDENTITY: what PostgreSQL writes of the old row of an UPDATE or DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaIdentity {
    /// The primary key (if any).
    Default,
    /// Nothing: UPDATE and DELETE fail once the table is published.
    Nothing,
    /// The whole old row.
    Full,
    /// The columns of a chosen unique index (`USING INDEX`).
    Index,
}

impl ReplicaIdentity {
    /// From `pg_class.relreplident` (or pgoutput's Relation message): `d`, `n`, `f` or `i`.
    pub fn from_code(code: u8) -> Self {
        match code {
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            _ => ReplicaIdentity::Default,
        }
    }

    /// The columns that identify a row in the stream: the primary key under DEFAULT and FULL
    /// (under FULL pgoutput flags every column, so the primary key is what identifies a row),
    /// the index's columns under INDEX, none under NOTHING.
    pub fn key<'a>(self, primary_key: &'a [String], identity_index: &'a [String]) -> &'a [String] {
        match self {
            ReplicaIdentity::Default | ReplicaIdentity::Full => primary_key,
            ReplicaIdentity::Index => identity_index,
            ReplicaIdentity::Nothing => &[],
        }
    }
}

/// What kind of relation a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// An ordinary table.
    Table,
    /// A partitioned table (its rows live in its partitions).
    Partitioned,
}

/// One replicated column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceColumn {
    /// Name, canonical type, type modifier and key flag, as change batches carry them.
    pub spec: ColumnSpec,
    /// The type as declared (`format_type`), e.g. `numeric(12,2)` or a domain's name.
    pub declared_type: String,
    /// Whether it may be NULL.
    pub nullable: bool,
    /// Whether PostgreSQL may store its values out of line (TOAST): an UPDATE that leaves such
    /// a value unchanged does not send it, unless the table's replica identity is FULL.
    pub toastable: bool,
    /// `atttypid`.
    pub type_oid: u32,
    /// `attnum`.
    pub attnum: i16,
}

/// A source table as pg2bq replicates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceTable {
    /// Schema and name.
    pub id: TableId,
    /// The table's OID.
    pub oid: u32,
    /// Ordinary or partitioned.
    pub kind: TableKind,
    /// Its replica identity.
    pub replica_identity: ReplicaIdentity,
    /// Primary key columns, in key order (empty without one).
    pub primary_key: Vec<String>,
    /// The columns pgoutput sends, in attribute order.
    pub columns: Vec<SourceColumn>,
    /// Generated columns pgoutput does not send, which pg2bq leaves out: all before PostgreSQL
    /// 18, virtual ones from 18 on (see [`super::generated`]).
    pub generated: Vec<String>,
    /// Columns the column selection leaves out (`PG2BQ_COLUMNS_EXCLUDE` and
    /// `PG2BQ_COLUMNS_INCLUDE`): never published, copied or compared.
    pub excluded: Vec<String>,
    /// The columns PostgreSQL's replica identity covers (every column under FULL): a
    /// publication's column list and row filter must stay within them.
    pub identity_columns: Vec<String>,
    /// The rows replicated (`PG2BQ_ROW_FILTERS`): a SQL condition, `None` for every row.
    pub row_filter: Option<String>,
    /// The planner's row estimate (-1: never analysed).
    pub rows_estimated: i64,
    /// Whether the connected user may SELECT it.
    pub selectable: bool,
}

impl SourceTable {
    /// The columns as change batches describe them.
    pub fn column_specs(&self) -> Vec<ColumnSpec> {
        self.columns.iter().map(|c| c.spec.clone()).collect()
    }

    /// Names of the key columns, in attribute order.
    pub fn key_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.spec.key)
            .map(|c| c.spec.name.clone())
            .collect()
    }

    /// The excluded columns that the replica identity needs (they cannot be left out).
    pub fn excluded_identity(&self) -> Vec<&str> {
        self.excluded
            .iter()
            .filter(|c| self.identity_columns.contains(c))
            .map(String::as_str)
            .collect()
    }

    /// ` WHERE (<row filter>)`, or nothing without a filter.
    pub fn where_clause(&self) -> String {
        self.row_filter
            .as_deref()
            .map(|f| format!(" WHERE ({f})"))
            .unwrap_or_default()
    }

    /// `"schema"."table"`.
    pub fn quoted_name(&self) -> String {
        quoted(&self.id)
    }

    /// Its name and its replicated columns' names, as the BigQuery name check takes them.
    pub fn source_names(&self) -> SourceNames {
        SourceNames {
            id: self.id.clone(),
            columns: self.columns.iter().map(|c| c.spec.name.clone()).collect(),
        }
    }
}

/// `"schema"."table"` of a table id.
pub fn quoted(table: &TableId) -> String {
    format!(
        "{}.{}",
        pg2bq_core::pg_connect::quote_ident(&table.schema),
        pg2bq_core::pg_connect::quote_ident(&table.table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_replica_identity() {
        let pk = vec!["id".to_owned()];
        let index = vec!["code".to_owned()];
        assert_eq!(ReplicaIdentity::from_code(b'd').key(&pk, &index), pk);
        assert_eq!(ReplicaIdentity::from_code(b'f').key(&pk, &index), pk);
        assert_eq!(ReplicaIdentity::from_code(b'i').key(&pk, &index), index);
        assert!(ReplicaIdentity::from_code(b'n').key(&pk, &index).is_empty());
    }
}
