//! Which source tables a stream replicates: include and exclude patterns of the form
//! `schema.table`, where `*` matches any run of characters and `?` any one character.
//! A table is replicated when an include pattern matches it and no exclude pattern does.

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

/// Include and exclude patterns, and the columns and rows replicated of each table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSelection {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
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
            columns: ColumnRules::default(),
        })
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
    fn rejects_bad_patterns() {
        assert!(TableSelection::new(Vec::<String>::new(), Vec::<String>::new()).is_err());
        assert!(TablePattern::parse("a.b.c").is_err());
        assert!(TablePattern::parse(".x").is_err());
    }
}
