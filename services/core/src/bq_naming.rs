//! Where a source table and its columns land in BigQuery ([`DatasetLayout`]), the explicit
//! renames ([`rename`]), the check that no two source objects land on one name
//! ([`mod@collisions`]), and the names of the metadata columns.

pub mod collisions;
pub mod rename;

use crate::error::{CoreError, Result};
use crate::wire::TableId;
pub use collisions::{NameProblem, collisions};
pub use rename::{RenameEntry, RenameMap};
use std::collections::BTreeMap;
use std::fmt;

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
/// Metadata column of staging tables (`<table>__changes`): when the writer appended the row, by
/// its clock. The staging tables are partitioned by it, and a MERGE reads only the rows
/// appended since the previous one (see the writer's `merge::window`).
pub const APPENDED_AT_COLUMN: &str = "_pg2bq_appended_at";
/// Metadata column of staged mirror tables with soft deletes: TRUE for a row deleted at the
/// source (or removed by a TRUNCATE), which stays in the mirror with its last values.
pub const IS_DELETED_COLUMN: &str = "_pg2bq_is_deleted";
/// Metadata column of staged mirror tables with soft deletes: the commit time of the deletion.
pub const DELETED_AT_COLUMN: &str = "_pg2bq_deleted_at";
/// The table in each dataset that holds the changes that could not be written, with the reason.
pub const QUARANTINE_TABLE: &str = "_pg2bq_quarantine";
/// Description of the key columns of a change table: how a writer that never saw the table
/// learns its key when it is asked to merge it.
pub const KEY_COLUMN_DESCRIPTION: &str = "pg2bq: primary key column";
/// Suffix of the change table that the staged merge strategy folds into the target table.
pub const CHANGE_TABLE_SUFFIX: &str = "__changes";
/// What the name of a mirror table's live view adds to the mirror's (shorter than
/// [`CHANGE_TABLE_SUFFIX`], so it fits wherever the change table's name does).
pub const LIVE_VIEW_SUFFIX: &str = "__live";

/// BigQuery's longest table name, in UTF-8 bytes.
pub const MAX_TABLE_NAME_BYTES: usize = 1024;
/// The longest mirror table name pg2bq gives: its change table (the name and
/// [`CHANGE_TABLE_SUFFIX`]) must fit within [`MAX_TABLE_NAME_BYTES`] too.
pub const MAX_MIRROR_TABLE_BYTES: usize = MAX_TABLE_NAME_BYTES - CHANGE_TABLE_SUFFIX.len();
/// BigQuery's longest column name, in characters.
pub const MAX_COLUMN_NAME_CHARS: usize = 300;
/// BigQuery's longest dataset name, in characters.
pub const MAX_DATASET_NAME_CHARS: usize = 1024;
/// Prefix of pg2bq's metadata columns (and of any it may add).
pub const METADATA_PREFIX: &str = "_pg2bq_";

/// Column names a source column must not take, compared without regard to case: BigQuery's
/// reserved prefixes, BigQuery CDC's pseudo-columns (written by the native merge strategy), and
/// pg2bq's metadata columns.
const RESERVED_COLUMNS: &[ReservedColumn] = &[
    ReservedColumn::prefix("_TABLE_", "BigQuery"),
    ReservedColumn::prefix("_FILE_", "BigQuery"),
    ReservedColumn::prefix("_PARTITION", "BigQuery"),
    ReservedColumn::prefix("_ROW_TIMESTAMP", "BigQuery"),
    ReservedColumn::prefix("__ROOT__", "BigQuery"),
    ReservedColumn::prefix("_COLIDENTIFIER", "BigQuery"),
    ReservedColumn::name("_CHANGE_TYPE", "BigQuery CDC (the native merge strategy)"),
    ReservedColumn::name(
        "_CHANGE_SEQUENCE_NUMBER",
        "BigQuery CDC (the native merge strategy)",
    ),
    ReservedColumn::prefix(METADATA_PREFIX, "pg2bq's metadata columns"),
];

/// A column name, or a prefix of column names, that BigQuery or pg2bq reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedColumn {
    /// The name or prefix, as BigQuery's documentation writes it.
    pub pattern: &'static str,
    /// Whether every name starting with `pattern` is reserved (else only `pattern` itself).
    pub is_prefix: bool,
    /// Who reserves it.
    pub owner: &'static str,
}

impl ReservedColumn {
    const fn prefix(pattern: &'static str, owner: &'static str) -> Self {
        ReservedColumn {
            pattern,
            is_prefix: true,
            owner,
        }
    }

    const fn name(pattern: &'static str, owner: &'static str) -> Self {
        ReservedColumn {
            pattern,
            is_prefix: false,
            owner,
        }
    }

    fn covers(&self, name: &str) -> bool {
        let (name, pattern) = (name.to_ascii_lowercase(), self.pattern.to_ascii_lowercase());
        if self.is_prefix {
            name.starts_with(&pattern)
        } else {
            name == pattern
        }
    }
}

impl fmt::Display for ReservedColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_prefix {
            write!(
                f,
                "column names starting with {} are reserved for {}",
                self.pattern, self.owner
            )
        } else {
            write!(
                f,
                "the column name {} is reserved for {}",
                self.pattern, self.owner
            )
        }
    }
}

/// The reservation a BigQuery column name falls under, if any (case does not matter).
pub fn reserved_column(name: &str) -> Option<ReservedColumn> {
    RESERVED_COLUMNS.iter().find(|r| r.covers(name)).copied()
}

/// How source tables are arranged into BigQuery datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datasets {
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

/// Where source tables and their columns land in BigQuery: the arrangement of the datasets, the
/// naming rule and the explicit renames. Every BigQuery name of a source object comes from here
/// (the writer's tables and columns, validate, stream status, discover, the collision check).
///
/// The naming rule: a name keeps its ASCII letters, digits and underscores, every other
/// character becomes `_`, and a name starting with a digit (or empty) gets a leading `_`
/// ([`sanitize`]). A name longer than BigQuery takes is cut to [`MAX_MIRROR_TABLE_BYTES`] (tables),
/// [`MAX_COLUMN_NAME_CHARS`] (columns) or [`MAX_DATASET_NAME_CHARS`] (datasets). Distinct source
/// names can so become one BigQuery name; [`collisions()`] finds them, and the [`RenameMap`] gives
/// either another name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetLayout {
    datasets: Datasets,
    renames: RenameMap,
}

impl DatasetLayout {
    /// Reads the layout from its settings: a single dataset wins over a prefix. No renames.
    pub fn from_settings(single_dataset: Option<&str>, prefix: &str) -> Result<Self> {
        let datasets = match single_dataset.filter(|d| !d.is_empty()) {
            Some(dataset) => {
                if sanitize(dataset) != dataset || dataset.len() > MAX_DATASET_NAME_CHARS {
                    return Err(CoreError::Config(format!(
                        "dataset '{dataset}' is not a valid BigQuery dataset name: use letters, digits and underscores (at most {MAX_DATASET_NAME_CHARS})"
                    )));
                }
                Datasets::Single {
                    dataset: dataset.to_owned(),
                }
            }
            None => Datasets::PerSchema {
                prefix: sanitize(prefix),
            },
        };
        Ok(DatasetLayout {
            datasets,
            renames: RenameMap::default(),
        })
    }

    /// This layout with explicit renames.
    pub fn with_renames(self, renames: RenameMap) -> Self {
        DatasetLayout { renames, ..self }
    }

    /// The arrangement of the datasets.
    pub fn datasets(&self) -> &Datasets {
        &self.datasets
    }

    /// The explicit renames.
    pub fn renames(&self) -> &RenameMap {
        &self.renames
    }

    /// The BigQuery table a source table is written to.
    pub fn target(&self, source: &TableId) -> BqTableName {
        let (dataset, table) = match &self.datasets {
            Datasets::PerSchema { prefix } => (
                truncate(
                    format!("{prefix}{}", sanitize(&source.schema)),
                    MAX_DATASET_NAME_CHARS,
                ),
                sanitize(&source.table),
            ),
            Datasets::Single { dataset } => (
                dataset.clone(),
                format!("{}_{}", sanitize(&source.schema), sanitize(&source.table)),
            ),
        };
        let table = match self.renames.table(source) {
            Some(renamed) => renamed.to_owned(),
            None => truncate(table, MAX_MIRROR_TABLE_BYTES),
        };
        BqTableName { dataset, table }
    }

    /// The BigQuery name of a column of a source table.
    pub fn column(&self, source: &TableId, column: &str) -> String {
        match self.renames.column(source, column) {
            Some(renamed) => renamed.to_owned(),
            None => default_column_name(column),
        }
    }

    /// The BigQuery names of a source table: its table and its columns.
    pub fn names(&self, source: &TableId) -> TableNames {
        TableNames {
            target: self.target(source),
            columns: self.renames.columns_of(source),
        }
    }
}

/// The BigQuery names of one source table: the table, and the name of each column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// The mirror table.
    pub target: BqTableName,
    /// Renamed columns: source name to BigQuery name.
    columns: BTreeMap<String, String>,
}

impl TableNames {
    /// The BigQuery name of a column.
    pub fn column(&self, pg_name: &str) -> String {
        match self.columns.get(pg_name) {
            Some(renamed) => renamed.clone(),
            None => default_column_name(pg_name),
        }
    }
}

/// A table whose columns keep the names the naming rule gives them (no renames).
impl From<BqTableName> for TableNames {
    fn from(target: BqTableName) -> Self {
        TableNames {
            target,
            columns: BTreeMap::new(),
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

    /// The live view of this mirror table: the mirror with the changes not merged yet.
    pub fn live_view(&self) -> BqTableName {
        BqTableName {
            dataset: self.dataset.clone(),
            table: format!("{}{LIVE_VIEW_SUFFIX}", self.table),
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

/// Whether `name` is what [`sanitize`] gives: letters, digits and underscores, not empty, not
/// starting with a digit.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty() && sanitize(name) == name
}

/// `name` (ASCII) cut to `max` characters.
fn truncate(mut name: String, max: usize) -> String {
    name.truncate(max);
    name
}

/// The BigQuery column name the naming rule gives a PostgreSQL column (see [`DatasetLayout`]);
/// a rename may give another ([`DatasetLayout::column`]).
fn default_column_name(pg_name: &str) -> String {
    truncate(sanitize(pg_name), MAX_COLUMN_NAME_CHARS)
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
    fn renames_replace_the_rule_for_tables_and_columns() {
        let renames = RenameMap::parse(r#"public."a.b"=ab, public.t.Total=total_net"#).unwrap();
        for layout in [
            DatasetLayout::from_settings(Some("mirror"), "").unwrap(),
            DatasetLayout::from_settings(None, "pg_").unwrap(),
        ] {
            let layout = layout.with_renames(renames.clone());
            let renamed = layout.target(&table("public", "a.b"));
            assert_eq!(renamed.table, "ab", "the whole table name, in any layout");
            assert_eq!(renamed.change_table().table, "ab__changes");
            assert_eq!(
                layout.target(&table("public", "a.b")).dataset,
                layout.target(&table("public", "t")).dataset,
                "a rename keeps the dataset"
            );
            let t = table("public", "t");
            assert_eq!(layout.column(&t, "Total"), "total_net");
            assert_eq!(layout.column(&t, "total"), "total", "matched exactly");
            assert_eq!(layout.column(&table("public", "u"), "Total"), "Total");
            let names = layout.names(&t);
            assert_eq!(names.target, layout.target(&t));
            assert_eq!(
                (names.column("Total"), names.column("x-y")),
                ("total_net".to_owned(), "x_y".to_owned())
            );
        }
        let bare = TableNames::from(BqTableName {
            dataset: "d".into(),
            table: "t".into(),
        });
        assert_eq!(bare.column("Total"), "Total");
    }

    #[test]
    fn names_are_cut_to_what_bigquery_takes() {
        let layout = DatasetLayout::from_settings(Some("mirror"), "").unwrap();
        let long = "x".repeat(2000);
        let t = layout.target(&table("s", &long));
        assert_eq!(t.table.len(), MAX_MIRROR_TABLE_BYTES);
        assert_eq!(t.change_table().table.len(), MAX_TABLE_NAME_BYTES);
        assert_eq!(
            layout.column(&table("s", "t"), &long).len(),
            MAX_COLUMN_NAME_CHARS
        );
        let per_schema = DatasetLayout::from_settings(None, "p_").unwrap();
        assert_eq!(
            per_schema.target(&table(&long, "t")).dataset.len(),
            MAX_DATASET_NAME_CHARS
        );
        assert!(DatasetLayout::from_settings(Some(&long), "").is_err());
    }

    #[test]
    fn reserved_column_names_ignore_case() {
        assert_eq!(
            reserved_column("_PartitionTime").map(|r| r.pattern),
            Some("_PARTITION")
        );
        assert_eq!(
            reserved_column("_PG2BQ_SEQ").map(|r| r.owner),
            Some("pg2bq's metadata columns")
        );
        assert!(reserved_column("_change_type").is_some());
        assert!(reserved_column("_change_type_2").is_none());
        assert!(reserved_column("partition").is_none());
        for metadata in [
            SEQ_COLUMN,
            COMMIT_TS_COLUMN,
            OP_COLUMN,
            CHANGE_TYPE_COLUMN,
            XID_COLUMN,
        ] {
            assert!(reserved_column(metadata).is_some(), "{metadata}");
        }
    }

    #[test]
    fn sanitizes_identifiers() {
        assert_eq!(sanitize("1abc"), "_1abc");
        assert_eq!(sanitize("a b.c"), "a_b_c");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("名前"), "__");
        assert!(is_identifier("_1abc") && !is_identifier("1abc") && !is_identifier(""));
    }
}
