//! `pg2bq discover`: the source's tables as pg2bq sees them, with the BigQuery type each column
//! becomes.

use crate::error::{CliError, Result};
use pg2bq_core::bq_types::bq_type_for;
use pg2bq_core::pg_types::builtin_type_name;
use pg2bq_core::selection::TableSelection;
use pg2bq_core::wire::TableId;
use serde::Serialize;
use tokio_postgres::Client;

/// A discovered table.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveredTable {
    /// `schema.table`.
    pub table: String,
    /// Row estimate (PostgreSQL's statistics; -1 if never analysed).
    pub rows_estimated: i64,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// The columns.
    pub columns: Vec<DiscoveredColumn>,
}

/// A discovered column.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveredColumn {
    /// Name.
    pub name: String,
    /// PostgreSQL type as declared.
    pub pg_type: String,
    /// Whether it may be NULL.
    pub nullable: bool,
    /// The BigQuery type it becomes.
    pub bigquery_type: String,
}

/// The tables the selection picks, with their columns.
pub async fn discover(sql: &Client, selection: &TableSelection) -> Result<Vec<DiscoveredTable>> {
    let rows = sql
        .query(
            "SELECT n.nspname::text, c.relname::text, c.reltuples::bigint, a.attname::text, \
                    pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                    COALESCE(NULLIF(t.typbasetype, 0), a.atttypid), \
                    CASE WHEN a.atttypmod >= 0 THEN a.atttypmod ELSE t.typtypmod END, t.typcategory::text, \
                    COALESCE(a.attnum = ANY(i.indkey), false) \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1, 2, a.attnum",
            &[],
        )
        .await
        .map_err(CliError::postgres("reading the catalogue"))?;
    let mut tables: Vec<DiscoveredTable> = Vec::new();
    for row in rows {
        let id = TableId {
            schema: row.get(0),
            table: row.get(1),
        };
        if !selection.matches(&id) {
            continue;
        }
        let name = id.to_string();
        let base_oid: u32 = row.get(6);
        let category: String = row.get(8);
        let canonical = match builtin_type_name(base_oid) {
            Some(builtin) => builtin.to_owned(),
            None if category == "A" => "array[]".to_owned(),
            None => "other".to_owned(),
        };
        let column = DiscoveredColumn {
            name: row.get(3),
            pg_type: row.get(4),
            nullable: row.get(5),
            bigquery_type: bq_type_for(&canonical, row.get(7)).name().to_owned(),
        };
        let key: bool = row.get(9);
        if tables.last().is_none_or(|t| t.table != name) {
            tables.push(DiscoveredTable {
                table: name,
                rows_estimated: row.get(2),
                primary_key: Vec::new(),
                columns: Vec::new(),
            });
        }
        let table = tables.last_mut().expect("pushed above");
        if key {
            table.primary_key.push(column.name.clone());
        }
        table.columns.push(column);
    }
    Ok(tables)
}

/// The tables as readable text.
pub fn render(tables: &[DiscoveredTable]) -> String {
    let mut out = String::new();
    for t in tables {
        let key = if t.primary_key.is_empty() {
            "none (append-only)".to_owned()
        } else {
            t.primary_key.join(", ")
        };
        let rows = if t.rows_estimated < 0 {
            "not analysed".to_owned()
        } else {
            format!("~{} rows", t.rows_estimated)
        };
        out.push_str(&format!("{}  ({rows}, primary key: {key})\n", t.table));
        let width = t.columns.iter().map(|c| c.name.len()).max().unwrap_or(4);
        let type_width = t.columns.iter().map(|c| c.pg_type.len()).max().unwrap_or(4);
        for c in &t.columns {
            let null = if c.nullable { "" } else { " not null" };
            out.push_str(&format!(
                "  {:<width$}  {:<type_width$}  -> {}{null}\n",
                c.name, c.pg_type, c.bigquery_type
            ));
        }
    }
    out
}
