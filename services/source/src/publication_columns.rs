//! The column lists and row filters of the publication's tables (PostgreSQL 15+), from the
//! column selection and row filters ([`pg2bq_core::column_rules`]).
//!
//! A table's spec in the publication is `"schema"."table" (kept columns) WHERE (filter)`: the
//! column list only when columns are left out, so that a column added later joins by itself.
//! Before PostgreSQL 15 the publication has no column lists (capture leaves the columns out of
//! what it decodes) and row filters are refused.
//!
//! Both must stay within the replica identity, or PostgreSQL refuses the application's UPDATE
//! and DELETE on the table: a table whose selection leaves out an identity column, or whose row
//! filter reads a column outside it, is not published ([`Unpublishable`], with the fix).

use crate::catalog::tables::quoted;
use crate::catalog::{SourceTable, Unpublishable};
use crate::error::{Result, SourceError};
use pg2bq_core::column_rules::{COLUMNS_EXCLUDE_ENV, ColumnRules, ROW_FILTERS_ENV};
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::wire::TableId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use tokio_postgres::Client;

/// The first server version with column lists and row filters in publications.
pub const LISTS_VERSION: i32 = 150_000;

/// What the publication holds of a table besides its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedSpec {
    /// The column list, by name in attribute order (`None`: every column).
    pub columns: Option<Vec<String>>,
    /// The row filter as PostgreSQL prints it back (`None`: every row).
    pub filter: Option<String>,
    /// The columns the row filter reads.
    pub filter_columns: Vec<String>,
}

/// What pg2bq wants the publication to hold of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantedSpec {
    /// The column list (`None`: every column).
    pub columns: Option<Vec<String>>,
    /// The row filter as configured.
    pub filter: Option<String>,
}

impl WantedSpec {
    /// The spec of a table described with the column rules.
    pub fn of(table: &SourceTable) -> Self {
        WantedSpec {
            columns: (!table.excluded.is_empty())
                .then(|| table.columns.iter().map(|c| c.spec.name.clone()).collect()),
            filter: table.row_filter.clone(),
        }
    }

    /// The table as `ADD TABLE` takes it: `"s"."t" ("a", "b") WHERE (filter)`.
    pub fn sql(&self, table: &TableId) -> String {
        let mut sql = quoted(table);
        if let Some(columns) = &self.columns {
            let names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
            sql.push_str(&format!(" ({})", names.join(", ")));
        }
        if let Some(filter) = &self.filter {
            sql.push_str(&format!(" WHERE ({filter})"));
        }
        sql
    }

    /// Whether `published` may already be this spec: the same column list, and the same filter
    /// as PostgreSQL printed it back when pg2bq last set it (unknown in a new process: `false`).
    pub fn matches(&self, publication: &str, table: &TableId, published: &PublishedSpec) -> bool {
        if self.columns != published.columns {
            return false;
        }
        match (&self.filter, &published.filter) {
            (None, None) => true,
            (Some(wanted), Some(printed)) => deparsed()
                .lock()
                .map(|cache| {
                    cache.get(&(publication.to_owned(), table.clone(), wanted.clone()))
                        == Some(printed)
                })
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Remembers how PostgreSQL printed this spec's filter back once set.
    pub fn remember(&self, publication: &str, table: &TableId, published: &PublishedSpec) {
        if let (Some(wanted), Some(printed)) = (&self.filter, &published.filter)
            && let Ok(mut cache) = deparsed().lock()
        {
            cache.insert(
                (publication.to_owned(), table.clone(), wanted.clone()),
                printed.clone(),
            );
        }
    }
}

type Deparsed = HashMap<(String, TableId, String), String>;

/// Row filters as configured, and as PostgreSQL printed them back.
fn deparsed() -> &'static Mutex<Deparsed> {
    static DEPARSED: OnceLock<Mutex<Deparsed>> = OnceLock::new();
    DEPARSED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Refuses row filters before PostgreSQL 15.
pub fn check_version(rules: &ColumnRules, version: i32) -> Result<()> {
    if rules.has_row_filters() && version < LISTS_VERSION {
        return Err(SourceError::Catalog(format!(
            "row filters ({ROW_FILTERS_ENV}) need PostgreSQL 15 or later (publication WHERE \
             clauses), and this server is version {version}; fix: unset {ROW_FILTERS_ENV}, or \
             upgrade the source to PostgreSQL 15+"
        )));
    }
    Ok(())
}

/// The tables among `tables` whose column selection leaves out a replica identity column.
pub fn excluded_identity(rules: &ColumnRules, tables: &[SourceTable]) -> Vec<Unpublishable> {
    tables
        .iter()
        .filter_map(|t| {
            let columns = t.excluded_identity();
            let first = columns.first()?;
            Some(Unpublishable {
                table: t.id.clone(),
                reason: format!(
                    "not replicated: the column selection ({COLUMNS_EXCLUDE_ENV} / \
                     PG2BQ_COLUMNS_INCLUDE) leaves out {}, part of its key or replica identity: \
                     pg2bq identifies rows by them, and PostgreSQL would refuse the \
                     application's UPDATE and DELETE on a table published without them",
                    columns.join(", ")
                ),
                fix: rules.keep_key_fix(&t.id, first),
            })
        })
        .collect()
}

/// The published tables' specs (PostgreSQL 15+), for the publication with OID `oid`.
pub async fn published_specs(
    client: &Client,
    oid: u32,
) -> Result<BTreeMap<TableId, PublishedSpec>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, \
                    CASE WHEN pr.prattrs IS NULL THEN NULL ELSE \
                        ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                              WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs::int2[]) \
                              ORDER BY a.attnum) END, \
                    pg_catalog.pg_get_expr(pr.prqual, pr.prrelid), \
                    ARRAY(SELECT DISTINCT a.attname::text \
                          FROM regexp_matches(COALESCE(pr.prqual::text, ''), ':varattno (\\d+)', 'g') m \
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = pr.prrelid \
                               AND a.attnum = m[1]::int2) \
             FROM pg_catalog.pg_publication_rel pr \
             JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE pr.prpubid = $1",
            &[&oid],
        )
        .await
        .map_err(SourceError::postgres(
            "reading the publication's column lists and row filters",
        ))?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                crate::catalog::table_id(row),
                PublishedSpec {
                    columns: row.get(2),
                    filter: row.get(3),
                    filter_columns: row.get(4),
                },
            )
        })
        .collect())
}

/// The tables among `tables` whose published row filter reads a column outside the replica
/// identity.
pub fn filter_outside_identity(
    tables: &[SourceTable],
    specs: &BTreeMap<TableId, PublishedSpec>,
) -> Vec<Unpublishable> {
    tables
        .iter()
        .filter_map(|t| {
            let spec = specs.get(&t.id)?;
            let outside: Vec<&str> = spec
                .filter_columns
                .iter()
                .filter(|c| !t.identity_columns.contains(c))
                .map(String::as_str)
                .collect();
            if outside.is_empty() {
                return None;
            }
            let name = quoted(&t.id);
            let key = t.key_names();
            let on_key = if key.is_empty() {
                String::new()
            } else {
                format!(
                    "filter only on its replica identity columns ({}), or ",
                    key.join(", ")
                )
            };
            Some(Unpublishable {
                table: t.id.clone(),
                reason: format!(
                    "not replicated: its row filter ({ROW_FILTERS_ENV}) reads {}, which is not \
                     part of its replica identity, so PostgreSQL would refuse the application's \
                     UPDATE and DELETE on it once published",
                    outside.join(", ")
                ),
                fix: format!("{on_key}run ALTER TABLE {name} REPLICA IDENTITY FULL"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> TableId {
        TableId {
            schema: "public".into(),
            table: "Orders".into(),
        }
    }

    #[test]
    fn the_spec_quotes_columns_and_brackets_the_filter() {
        let spec = WantedSpec {
            columns: Some(vec!["id".into(), "Total".into()]),
            filter: Some("region = 'EU'".into()),
        };
        assert_eq!(
            spec.sql(&id()),
            r#""public"."Orders" ("id", "Total") WHERE (region = 'EU')"#
        );
        assert_eq!(WantedSpec::default().sql(&id()), r#""public"."Orders""#);
    }

    #[test]
    fn a_filter_matches_once_its_printed_form_is_known() {
        let spec = WantedSpec {
            columns: None,
            filter: Some("region = 'EU'".into()),
        };
        let printed = PublishedSpec {
            columns: None,
            filter: Some("(region = 'EU'::text)".into()),
            filter_columns: vec!["region".into()],
        };
        assert!(!spec.matches("p_test_match", &id(), &printed));
        spec.remember("p_test_match", &id(), &printed);
        assert!(spec.matches("p_test_match", &id(), &printed));
        let other = PublishedSpec {
            filter: Some("(region = 'US'::text)".into()),
            ..printed.clone()
        };
        assert!(!spec.matches("p_test_match", &id(), &other));
        assert!(WantedSpec::default().matches("p", &id(), &PublishedSpec::default()));
        let listed = PublishedSpec {
            columns: Some(vec!["id".into()]),
            ..PublishedSpec::default()
        };
        assert!(!WantedSpec::default().matches("p", &id(), &listed));
    }

    #[test]
    fn row_filters_are_refused_before_15() {
        let rules = ColumnRules::parse(None, None, Some("public.t=id > 0")).unwrap();
        let e = check_version(&rules, 140_010).unwrap_err().to_string();
        assert!(
            e.contains("PostgreSQL 15") && e.contains(ROW_FILTERS_ENV),
            "{e}"
        );
        assert!(check_version(&rules, 150_000).is_ok());
        assert!(check_version(&ColumnRules::default(), 140_010).is_ok());
    }
}
