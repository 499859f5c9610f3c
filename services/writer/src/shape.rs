//! The BigQuery shape of a source table as one change batch describes it.

use pg2bq_core::bq_naming::{
    BqTableName, CHANGE_TYPE_COLUMN, COMMIT_TS_COLUMN, OP_COLUMN, SEQ_COLUMN, TableNames,
    XID_COLUMN,
};
use pg2bq_core::bq_types::{BqType, bq_type_for};
use pg2bq_core::wire::ColumnSpec;

/// One data column as written to BigQuery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataColumn {
    /// BigQuery column name.
    pub name: String,
    /// BigQuery type.
    pub bq_type: BqType,
    /// PostgreSQL type (for value conversion).
    pub pg_type: String,
    /// Part of the key.
    pub key: bool,
}

/// The BigQuery shape of a source table at the time of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    /// The mirror table.
    pub target: BqTableName,
    /// Data columns, in source order.
    pub columns: Vec<DataColumn>,
}

impl TableShape {
    /// The shape of `columns` written with `names` (the layout's names of the source table,
    /// [`pg2bq_core::bq_naming::DatasetLayout::names`]; a bare target table keeps every column's
    /// name by the naming rule).
    pub fn new(names: impl Into<TableNames>, columns: &[ColumnSpec]) -> Self {
        let names = names.into();
        let columns = columns
            .iter()
            .map(|c| DataColumn {
                name: names.column(&c.name),
                bq_type: bq_type_for(&c.pg_type, c.type_modifier),
                pg_type: c.pg_type.clone(),
                key: c.key,
            })
            .collect();
        TableShape {
            target: names.target,
            columns,
        }
    }

    /// Key columns.
    pub fn keys(&self) -> impl Iterator<Item = &DataColumn> {
        self.columns.iter().filter(|c| c.key)
    }

    /// Names of the key columns.
    pub fn key_names(&self) -> Vec<String> {
        self.keys().map(|c| c.name.clone()).collect()
    }

    fn data_fields(&self) -> impl Iterator<Item = (String, BqType)> + '_ {
        self.columns.iter().map(|c| (c.name.clone(), c.bq_type))
    }

    /// Fields of the mirror table: data, then seq and commit time.
    pub fn target_fields(&self) -> Vec<(String, BqType)> {
        self.data_fields()
            .chain([
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
            ])
            .collect()
    }

    /// Fields of the change table: data, then op, seq and commit time (the order of change rows).
    pub fn change_fields(&self) -> Vec<(String, BqType)> {
        self.data_fields()
            .chain([
                (OP_COLUMN.to_owned(), BqType::String),
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
            ])
            .collect()
    }

    /// Fields of an append-only table: data, then change type, seq, commit time and transaction id
    /// (the order of append rows).
    pub fn append_fields(&self) -> Vec<(String, BqType)> {
        self.data_fields()
            .chain([
                (CHANGE_TYPE_COLUMN.to_owned(), BqType::String),
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
                (XID_COLUMN.to_owned(), BqType::Int64),
            ])
            .collect()
    }

    /// Whether the table has key columns (and so can be mirrored).
    pub fn has_key(&self) -> bool {
        self.keys().next().is_some()
    }

    /// Clustering columns: the first four key columns of clusterable types.
    pub fn clustering(&self) -> Vec<String> {
        self.keys()
            .filter(|c| !matches!(c.bq_type, BqType::Float64 | BqType::Bytes | BqType::Json))
            .take(4)
            .map(|c| c.name.clone())
            .collect()
    }
}

/// Whether a column name is one of pg2bq's metadata columns.
pub fn is_metadata(name: &str) -> bool {
    [SEQ_COLUMN, COMMIT_TS_COLUMN, OP_COLUMN]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(name))
}
