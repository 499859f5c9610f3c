//! Which source tables a stream replicates: include and exclude patterns of the form
//! `schema.table`, where `*` matches any run of characters and `?` any one character.
//! A table is replicated when an include pattern matches it and no exclude pattern does.
//!
//! Partitioned tables are replicated through their root (one table, the default) or as their
//! leaf partitions ([`Partitions`]). As leaves, a partition is selected when a pattern matches it
//! or one of its ancestors, so `public.measurements` picks every partition of that table.

use crate::column_rules::ColumnRules;
use crate::error::{CoreError, Result};
use crate::wire::TableId;
use std::fmt;

/// One `schema.table` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    schema: String,
    table: String,
}

impl TablePattern {
    /// Parses `schema.table`; a bare `name` means `name.*` (every table of a schema).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CoreError::Config(
                "an empty table pattern: use schema.table, e.g. public.*".into(),
            ));
        }
        let (schema, table) = text.split_once('.').unwrap_or((text, "*"));
        if schema.is_empty() || table.is_empty() || table.contains('.') {
            return Err(CoreError::Config(format!(
                "table pattern '{text}' is not of the form schema.table (wildcards * and ?), e.g. sales.order_*"
            )));
        }
        Ok(TablePattern {
            schema: schema.to_owned(),
            table: table.to_owned(),
        })
    }

    /// Whether the pattern matches the table.
    pub fn matches(&self, table: &TableId) -> bool {
        wildcard_match(&self.schema, &table.schema) && wildcard_match(&self.table, &table.table)
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// How a stream replicates partitioned tables (`PG2BQ_PARTITIONS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Partitions {
    /// Through the root: one BigQuery table per partitioned table, whatever its partitions
    /// (PostgreSQL's `publish_via_partition_root = true`).
    #[default]
    Root,
    /// As leaves: one BigQuery table per leaf partition, named after it
    /// (`publish_via_partition_root = false`).
    Leaves,
}

impl Partitions {
    /// The publication's `publish_via_partition_root` for this choice.
    pub fn via_root(self) -> bool {
        self == Partitions::Root
    }

    /// The setting's value: `root` or `leaves`.
    pub fn as_str(self) -> &'static str {
        match self {
            Partitions::Root => "root",
            Partitions::Leaves => "leaves",
        }
    }
}

/// Include and exclude patterns, how partitioned tables are replicated, and the columns and rows
/// replicated of each table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSelection {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
    partitions: Partitions,
    columns: ColumnRules,
}

impl TableSelection {
    /// A selection from pattern lists.
    pub fn new<I, E>(include: I, exclude: E) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
        E: IntoIterator,
        E::Item: AsRef<str>,
    {
        let parse = |items: Vec<String>| -> Result<Vec<TablePattern>> {
            items
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| TablePattern::parse(s))
                .collect()
        };
        let include = parse(include.into_iter().map(|s| s.as_ref().to_owned()).collect())?;
        let exclude = parse(exclude.into_iter().map(|s| s.as_ref().to_owned()).collect())?;
        if include.is_empty() {
            return Err(CoreError::Config(
                "no tables to replicate: set at least one include pattern, e.g. PG2BQ_INCLUDE=public.*".into(),
            ));
        }
        Ok(TableSelection {
            include,
            exclude,
            partitions: Partitions::Root,
            columns: ColumnRules::default(),
        })
    }

    /// The same patterns, replicating partitioned tables as `partitions` says.
    pub fn with_partitions(mut self, partitions: Partitions) -> Self {
        self.partitions = partitions;
        self
    }

    /// How partitioned tables are replicated.
    pub fn partitions(&self) -> Partitions {
        self.partitions
    }

    /// The selection with these column and row rules.
    pub fn with_columns(mut self, columns: ColumnRules) -> Self {
        self.columns = columns;
        self
    }

    /// The columns and rows replicated of each table.
    pub fn columns(&self) -> &ColumnRules {
        &self.columns
    }

    /// Whether the table is replicated.
    pub fn matches(&self, table: &TableId) -> bool {
        self.include.iter().any(|p| p.matches(table))
            && !self.exclude.iter().any(|p| p.matches(table))
    }

    /// Whether a leaf partition with these ancestors (parent first) is replicated: an include
    /// pattern matches it or an ancestor, and no exclude pattern matches any of them.
    pub fn matches_partition(&self, leaf: &TableId, ancestors: &[TableId]) -> bool {
        let names = || std::iter::once(leaf).chain(ancestors);
        names().any(|t| self.include.iter().any(|p| p.matches(t)))
            && !names().any(|t| self.exclude.iter().any(|p| p.matches(t)))
    }
}

/// Glob matching with `*` and `?` over characters, iterative with backtracking to the last `*`.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, table: &str) -> TableId {
        TableId {
            schema: schema.into(),
            table: table.into(),
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("order_*", "order_lines"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*_log*", "app_log_2024"));
        assert!(!wildcard_match("order_*", "orders"));
    }

    #[test]
    fn include_minus_exclude() {
        let s =
            TableSelection::new(["public.*", "sales"], ["public.tmp_*", "sales.audit"]).unwrap();
        assert!(s.matches(&t("public", "users")));
        assert!(!s.matches(&t("public", "tmp_import")));
        assert!(s.matches(&t("sales", "orders")));
        assert!(!s.matches(&t("sales", "audit")));
        assert!(!s.matches(&t("other", "users")));
    }

    #[test]
    fn a_partition_is_selected_through_its_ancestors() {
        let s = TableSelection::new(["public.measurements", "public.log_*"], ["public.log_old"])
            .unwrap()
            .with_partitions(Partitions::Leaves);
        assert_eq!(s.partitions(), Partitions::Leaves);
        let root = t("public", "measurements");
        assert!(s.matches_partition(&t("public", "m_2024"), std::slice::from_ref(&root)));
        assert!(s.matches_partition(&t("public", "log_2024"), &[t("public", "other")]));
        assert!(!s.matches_partition(&t("public", "m_2024"), &[t("public", "other")]));
        // An excluded ancestor excludes its partitions.
        assert!(!s.matches_partition(&t("public", "log_old_1"), &[t("public", "log_old")]));
        assert!(Partitions::Root.via_root() && !Partitions::Leaves.via_root());
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(TableSelection::new(Vec::<String>::new(), Vec::<String>::new()).is_err());
        assert!(TablePattern::parse("a.b.c").is_err());
        assert!(TablePattern::parse(".x").is_err());
    }
}
