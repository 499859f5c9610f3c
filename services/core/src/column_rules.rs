//! Which columns and which rows of a replicated table leave PostgreSQL: per-table column
//! selection (`PG2BQ_COLUMNS_EXCLUDE`, `PG2BQ_COLUMNS_INCLUDE`) and row filters
//! (`PG2BQ_ROW_FILTERS`).
//!
//! Each setting is a list of `<table>=<spec>` entries separated by `;` (as the writer's
//! `PG2BQ_BQ_PARTITIONING`), where `<table>` is a `schema.table` pattern with `*` and `?`
//! wildcards (as `PG2BQ_INCLUDE`) or `*` (every table):
//!
//! - exclude: comma-separated column patterns, e.g. `public.users=ssn,card_*; *=internal_*`.
//!   Every entry that matches a table applies to it.
//! - include: comma-separated column patterns; a table with an include entry replicates only
//!   the columns it names (and its key columns must be among them), e.g.
//!   `public.orders=id,total,created_*`. The first entry naming the table applies, else `*`.
//! - row filters: a SQL boolean expression over the table's columns, as PostgreSQL's
//!   publication `WHERE` takes it, e.g. `public.orders=region = 'EU'`. The first entry naming
//!   the table applies, else `*`. A filter cannot contain `;`.
//!
//! A column is replicated when the include entry (if any) names it and no exclude entry does.

use crate::error::{CoreError, Result};
use crate::selection::TablePattern;
use crate::wire::TableId;

/// The setting holding column exclusions.
pub const COLUMNS_EXCLUDE_ENV: &str = "PG2BQ_COLUMNS_EXCLUDE";
/// The setting holding column include lists.
pub const COLUMNS_INCLUDE_ENV: &str = "PG2BQ_COLUMNS_INCLUDE";
/// The setting holding row filters.
pub const ROW_FILTERS_ENV: &str = "PG2BQ_ROW_FILTERS";

/// The tables an entry applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tables {
    All,
    Matching(TablePattern),
}

impl Tables {
    fn matches(&self, table: &TableId) -> bool {
        match self {
            Tables::All => true,
            Tables::Matching(pattern) => pattern.matches(table),
        }
    }
}

/// Column selection and row filters, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnRules {
    exclude: Vec<(Tables, Vec<String>)>,
    include: Vec<(Tables, Vec<String>)>,
    row_filters: Vec<(Tables, String)>,
}

impl ColumnRules {
    /// Parses the three settings (unset or empty: nothing).
    pub fn parse(
        exclude: Option<&str>,
        include: Option<&str>,
        row_filters: Option<&str>,
    ) -> Result<Self> {
        let columns = |text: &str, setting: &str| -> Result<Vec<(Tables, Vec<String>)>> {
            entries(text, setting)?
                .into_iter()
                .map(|(tables, spec)| {
                    let patterns: Vec<String> = spec
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if patterns.is_empty() {
                        return Err(CoreError::Config(format!(
                            "{setting}: the entry for {} names no column; write \
                             `<schema.table>=col1,col2` (wildcards * and ?)",
                            show(&tables)
                        )));
                    }
                    Ok((tables, patterns))
                })
                .collect()
        };
        Ok(ColumnRules {
            exclude: columns(exclude.unwrap_or_default(), COLUMNS_EXCLUDE_ENV)?,
            include: columns(include.unwrap_or_default(), COLUMNS_INCLUDE_ENV)?,
            row_filters: entries(row_filters.unwrap_or_default(), ROW_FILTERS_ENV)?,
        })
    }

    /// Whether nothing is configured: every column and every row of every table.
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.include.is_empty() && self.row_filters.is_empty()
    }

    /// Whether any row filter is configured.
    pub fn has_row_filters(&self) -> bool {
        !self.row_filters.is_empty()
    }

    /// Whether column `column` of `table` is replicated.
    pub fn keeps(&self, table: &TableId, column: &str) -> bool {
        let included = pick(&self.include, table)
            .is_none_or(|patterns| patterns.iter().any(|p| wildcard_match(p, column)));
        included
            && !self
                .exclude
                .iter()
                .filter(|(tables, _)| tables.matches(table))
                .any(|(_, patterns)| patterns.iter().any(|p| wildcard_match(p, column)))
    }

    /// The row filter of `table`, if it has one.
    pub fn row_filter(&self, table: &TableId) -> Option<&str> {
        pick(&self.row_filters, table).map(String::as_str)
    }

    /// The fix for a key column `column` of `table` that these rules leave out.
    pub fn keep_key_fix(&self, table: &TableId, column: &str) -> String {
        let excluded_by = self
            .exclude
            .iter()
            .filter(|(tables, patterns)| {
                tables.matches(table) && patterns.iter().any(|p| wildcard_match(p, column))
            })
            .map(|(tables, _)| show(tables))
            .collect::<Vec<_>>();
        if excluded_by.is_empty() {
            format!("add {column} to the {COLUMNS_INCLUDE_ENV} entry of {table}")
        } else {
            format!(
                "take {column} out of the {COLUMNS_EXCLUDE_ENV} entries for {} (key and replica \
                 identity columns are always replicated)",
                excluded_by.join(", ")
            )
        }
    }
}

/// The entry that applies to `table` among those that pick one: the first one matching it by
/// pattern, else the `*` one.
fn pick<'a, T>(entries: &'a [(Tables, T)], table: &TableId) -> Option<&'a T> {
    entries
        .iter()
        .find(|(tables, _)| matches!(tables, Tables::Matching(p) if p.matches(table)))
        .or_else(|| entries.iter().find(|(tables, _)| *tables == Tables::All))
        .map(|(_, value)| value)
}

fn show(tables: &Tables) -> String {
    match tables {
        Tables::All => "*".to_owned(),
        Tables::Matching(pattern) => pattern.to_string(),
    }
}

/// The `<table>=<spec>` entries of a setting.
fn entries(text: &str, setting: &str) -> Result<Vec<(Tables, String)>> {
    text.split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (table, spec) = entry.split_once('=').ok_or_else(|| {
                CoreError::Config(format!(
                    "{setting}: `{entry}` is not `<schema.table or *>=<spec>`; entries are \
                     separated by `;`"
                ))
            })?;
            let (table, spec) = (table.trim(), spec.trim());
            if spec.is_empty() {
                return Err(CoreError::Config(format!(
                    "{setting}: the entry `{entry}` has nothing after `=`"
                )));
            }
            let tables = if table == "*" {
                Tables::All
            } else {
                Tables::Matching(
                    TablePattern::parse(table)
                        .map_err(|e| CoreError::Config(format!("{setting}: {e}")))?,
                )
            };
            Ok((tables, spec.to_owned()))
        })
        .collect()
}

/// Glob matching of a column name with `*` and `?`.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    crate::selection::wildcard_match(pattern, text)
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
    fn excludes_add_up_and_includes_pick_one_entry() {
        let rules = ColumnRules::parse(
            Some("public.users=ssn,card_*; *=internal_*"),
            Some("public.orders=id,total,created_*; *=id,name"),
            None,
        )
        .unwrap();
        let users = t("public", "users");
        let orders = t("public", "orders");
        let other = t("sales", "x");
        assert!(!rules.keeps(&users, "ssn"));
        assert!(!rules.keeps(&users, "card_number"));
        assert!(!rules.keeps(&users, "internal_note"));
        assert!(rules.keeps(&users, "name"));
        assert!(!rules.keeps(&users, "email"), "the `*` include applies");
        assert!(rules.keeps(&orders, "created_at"));
        assert!(rules.keeps(&orders, "total"));
        assert!(
            !rules.keeps(&orders, "name"),
            "the table's own include wins"
        );
        assert!(!rules.keeps(&orders, "internal_id"));
        assert!(rules.keeps(&other, "id"));
        assert!(ColumnRules::default().is_empty());
    }

    #[test]
    fn row_filters_keep_their_equal_signs() {
        let rules = ColumnRules::parse(
            None,
            None,
            Some("public.orders=region = 'EU'; public.ev*=kind <> 'debug'; *=true"),
        )
        .unwrap();
        assert_eq!(
            rules.row_filter(&t("public", "orders")),
            Some("region = 'EU'")
        );
        assert_eq!(
            rules.row_filter(&t("public", "events")),
            Some("kind <> 'debug'")
        );
        assert_eq!(rules.row_filter(&t("public", "x")), Some("true"));
        assert!(rules.has_row_filters());
    }

    #[test]
    fn refuses_malformed_entries() {
        for bad in ["public.users", "public.users=", "a.b.c=x", "=x"] {
            let e = ColumnRules::parse(Some(bad), None, None).unwrap_err();
            assert!(e.to_string().contains(COLUMNS_EXCLUDE_ENV), "{e}");
        }
        assert!(ColumnRules::parse(None, Some("public.t= , "), None).is_err());
        assert!(ColumnRules::parse(None, None, Some("public.t")).is_err());
    }

    #[test]
    fn the_fix_names_the_entry_or_the_include_list() {
        let rules = ColumnRules::parse(Some("*=id"), Some("public.t=name"), None).unwrap();
        let fix = rules.keep_key_fix(&t("public", "t"), "id");
        assert!(
            fix.contains(COLUMNS_EXCLUDE_ENV) && fix.contains('*'),
            "{fix}"
        );
        let rules = ColumnRules::parse(None, Some("public.t=name"), None).unwrap();
        let fix = rules.keep_key_fix(&t("public", "t"), "id");
        assert!(fix.contains(COLUMNS_INCLUDE_ENV), "{fix}");
    }
}
