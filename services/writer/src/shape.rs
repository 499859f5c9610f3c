//! The BigQuery shape of a source table as one change batch describes it.

use pg2bq_bigquery::rest::{Partitioning, TableOptions, TimeUnit};
use pg2bq_core::bq_naming::{
    APPENDED_AT_COLUMN, BqTableName, CHANGE_TYPE_COLUMN, COMMIT_TS_COLUMN, DELETED_AT_COLUMN,
    IS_DELETED_COLUMN, OP_COLUMN, SEQ_COLUMN, TableNames, UNCHANGED_COLUMN, UNKNOWN_COLUMN,
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

    /// Fields of a native CDC mirror table: data, then seq and commit time.
    pub fn target_fields(&self) -> Vec<(String, BqType)> {
        self.data_fields()
            .chain([
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
            ])
            .collect()
    }

    /// Fields of a staged mirror table: data, then seq, commit time and the columns whose
    /// value is not known yet; with soft deletes, then whether the row is deleted and when.
    pub fn staged_target_fields(&self, soft_deletes: bool) -> Vec<(String, BqType)> {
        let mut fields = self.target_fields();
        fields.push((UNKNOWN_COLUMN.to_owned(), BqType::String));
        if soft_deletes {
            fields.push((IS_DELETED_COLUMN.to_owned(), BqType::Bool));
            fields.push((DELETED_AT_COLUMN.to_owned(), BqType::Timestamp));
        }
        fields
    }

    /// Fields of the change table: data, then op, seq, commit time, the columns PostgreSQL
    /// did not send (the order of change rows) and the time of the append.
    pub fn change_fields(&self) -> Vec<(String, BqType)> {
        self.data_fields()
            .chain([
                (OP_COLUMN.to_owned(), BqType::String),
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
                (UNCHANGED_COLUMN.to_owned(), BqType::String),
                (APPENDED_AT_COLUMN.to_owned(), BqType::Timestamp),
            ])
            .collect()
    }

    /// Fields of the staging table of an append-only table: its fields, then the time of the
    /// append.
    pub fn append_staging_fields(&self) -> Vec<(String, BqType)> {
        let mut fields = self.append_fields();
        fields.push((APPENDED_AT_COLUMN.to_owned(), BqType::Timestamp));
        fields
    }

    /// How staging tables are laid out: partitioned by the hour of the append, and clustered
    /// by the key, so that a MERGE reads the partitions appended since the previous one.
    pub fn staging_options(&self, description: String) -> TableOptions {
        TableOptions {
            clustering: self.clustering(),
            description: Some(description),
            partitioning: Some(Partitioning::Time {
                field: Some(APPENDED_AT_COLUMN.to_owned()),
                unit: TimeUnit::Hour,
            }),
            ..TableOptions::default()
        }
    }

    /// Fields of an append-only table (and of the log it is staged in): data, then change type,
    /// seq, commit time, transaction id and the columns PostgreSQL did not send (the order of
    /// log rows).
    pub fn append_fields(&self) -> Vec<(String, BqType)> {
        self.data_fields()
            .chain([
                (CHANGE_TYPE_COLUMN.to_owned(), BqType::String),
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
                (XID_COLUMN.to_owned(), BqType::Int64),
                (UNCHANGED_COLUMN.to_owned(), BqType::String),
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

/// Whether a column name is one of pg2bq's metadata columns (`_pg2bq_*`; source columns may
/// not take such names).
pub fn is_metadata(name: &str) -> bool {
    name.get(..METADATA_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(METADATA_PREFIX))
}

/// What every metadata column's name starts with.
const METADATA_PREFIX: &str = "_pg2bq_";
