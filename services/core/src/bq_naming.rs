//! Where a source table lands in BigQuery, and the names of the metadata columns.

use crate::error::{CoreError, Result};
use crate::wire::TableId;

/// Metadata column: the change's sequence number (newest wins).
pub const SEQ_COLUMN: &str = "_pg2bq_seq";
/// Metadata column: the source commit time.
pub const COMMIT_TS_COLUMN: &str = "_pg2bq_commit_ts";
/// Metadata column of change tables: `UPSERT` or `DELETE`.
pub const OP_COLUMN: &str = "_pg2bq_op";
/// Metadata column of append-only tables: INSERT, UPDATE-INSERT, UPDATE-DELETE, DELETE, READ
/// (backfill) or TRUNCATE.
pub const CHANGE_TYPE_COLUMN: &str = "_pg2bq_change_type";
/// Metadata column of append-only tables: the source transaction id.
pub const XID_COLUMN: &str = "_pg2bq_xid";
/// Metadata column of change rows and log rows: the columns whose values PostgreSQL did not send
/// (unchanged TOAST values), as `,name,name,` (NULL when every value was sent).
pub const UNCHANGED_COLUMN: &str = "_pg2bq_unchanged";
/// Metadata column of staged mirror tables: the columns whose value is not known yet (an
/// unchanged TOAST value whose earlier version has not arrived), as `,name,` (NULL when the row
/// is complete).
pub const UNKNOWN_COLUMN: &str = "_pg2bq_unknown";
/// The table in each dataset that holds the changes that could not be written, with the reason.
pub const QUARANTINE_TABLE: &str = "_pg2bq_quarantine";
/// Description of the key columns of a change table: how a writer that never saw the table
/// learns its key when it is asked to merge it.
pub const KEY_COLUMN_DESCRIPTION: &str = "pg2bq: primary key column";
/// Suffix of the change table that the staged merge strategy folds into the target table.
pub const CHANGE_TABLE_SUFFIX: &str = "__changes";

/// How source tables are arranged into BigQuery datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetLayout {
    /// One dataset per source schema, named `<prefix><schema>`; tables keep their names.
    PerSchema {
        /// Prepended to every dataset name (may be empty).
        prefix: String,
    },
    /// One dataset for everything; tables are named `<schema>_<table>`.
    Single {
        /// The dataset.
        dataset: String,
    },
}

impl DatasetLayout {
    /// Reads the layout from its settings: a single dataset wins over a prefix.
    pub fn from_settings(single_dataset: Option<&str>, prefix: &str) -> Result<Self> {
        match single_dataset.filter(|d| !d.is_empty()) {
            Some(dataset) => {
                if sanitize(dataset) != dataset {
                    return Err(CoreError::Config(format!(
                        "dataset '{dataset}' is not a valid BigQuery dataset name: use letters, digits and underscores"
                    )));
                }
                Ok(DatasetLayout::Single {
                    dataset: dataset.to_owned(),
                })
            }
            None => Ok(DatasetLayout::PerSchema {
                prefix: sanitize(prefix),
            }),
        }
    }

    /// The BigQuery table a source table is written to.
    pub fn target(&self, source: &TableId) -> BqTableName {
        match self {
            DatasetLayout::PerSchema { prefix } => BqTableName {
                dataset: format!("{prefix}{}", sanitize(&source.schema)),
                table: sanitize(&source.table),
            },
            DatasetLayout::Single { dataset } => BqTableName {
                dataset: dataset.clone(),
                table: format!("{}_{}", sanitize(&source.schema), sanitize(&source.table)),
            },
        }
    }
}

/// A BigQuery table, by dataset and name (the project is the writer's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BqTableName {
    /// Dataset id.
    pub dataset: String,
    /// Table id.
    pub table: String,
}

impl BqTableName {
    /// The change table that belongs to this table under the staged merge strategy.
    pub fn change_table(&self) -> BqTableName {
        BqTableName {
            dataset: self.dataset.clone(),
            table: format!("{}{CHANGE_TABLE_SUFFIX}", self.table),
        }
    }

    /// The quoted path `` `project.dataset.table` `` for GoogleSQL.
    pub fn quoted(&self, project: &str) -> String {
        format!("`{project}.{}.{}`", self.dataset, self.table)
    }

    /// The Storage Write API default stream of this table.
    pub fn default_stream(&self, project: &str) -> String {
        format!(
            "projects/{project}/datasets/{}/tables/{}/streams/_default",
            self.dataset, self.table
        )
    }
}

/// A BigQuery-safe identifier: letters, digits and underscores, not starting with a digit.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The BigQuery column name for a PostgreSQL column (see [`sanitize`]).
pub fn column_name(pg_name: &str) -> String {
    sanitize(pg_name)
}

/// A column name quoted for GoogleSQL.
pub fn quote_column(name: &str) -> String {
    format!("`{name}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, table: &str) -> TableId {
        TableId {
            schema: schema.into(),
            table: table.into(),
        }
    }

    #[test]
    fn per_schema_layout_prefixes_datasets() {
        let layout = DatasetLayout::from_settings(None, "pg_").unwrap();
        let t = layout.target(&table("sales", "order-lines"));
        assert_eq!(t.dataset, "pg_sales");
        assert_eq!(t.table, "order_lines");
        assert_eq!(t.change_table().table, "order_lines__changes");
        assert_eq!(t.quoted("p"), "`p.pg_sales.order_lines`");
    }

    #[test]
    fn single_dataset_layout_joins_schema_and_table() {
        let layout = DatasetLayout::from_settings(Some("mirror"), "ignored").unwrap();
        let t = layout.target(&table("public", "users"));
        assert_eq!(
            (t.dataset.as_str(), t.table.as_str()),
            ("mirror", "public_users")
        );
        assert!(DatasetLayout::from_settings(Some("bad-name"), "").is_err());
    }

    #[test]
    fn sanitizes_identifiers() {
        assert_eq!(sanitize("1abc"), "_1abc");
        assert_eq!(sanitize("a b.c"), "a_b_c");
        assert_eq!(sanitize(""), "_");
    }
}
