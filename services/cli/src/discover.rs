//! `pg2bq discover`: the source's tables as pg2bq sees them, with the BigQuery type each column
//! becomes.

use crate::error::Result;
use pg2bq_core::bq_types::bq_type_for;
use pg2bq_core::selection::TableSelection;
use pg2bq_source::catalog::Catalog;
use pg2bq_source::catalog::generated::left_out;
use pg2bq_source::server::ServerRole;
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
    /// Generated columns left out of the mirror (all before PostgreSQL 18, virtual ones from
    /// 18 on).
    pub generated: Vec<String>,
    /// Why they are left out and the fix (empty without any).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generated_note: String,
    /// Columns the column selection leaves out (`PG2BQ_COLUMNS_EXCLUDE`,
    /// `PG2BQ_COLUMNS_INCLUDE`), which are not replicated.
    pub excluded: Vec<String>,
    /// The rows replicated (`PG2BQ_ROW_FILTERS`), if not all.
    pub row_filter: Option<String>,
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

/// The tables the selection picks, with their columns as pg2bq replicates them.
pub async fn discover(
    sql: &Client,
    selection: &TableSelection,
    state_schema: &str,
) -> Result<Vec<DiscoveredTable>> {
    let tables = Catalog::new()
        .selected_tables(sql, selection, state_schema)
        .await?;
    let note = left_out(ServerRole::read(sql).await?.version_num);
    Ok(tables
        .into_iter()
        .map(|t| DiscoveredTable {
            table: t.id.to_string(),
            rows_estimated: t.rows_estimated,
            primary_key: t.primary_key,
            columns: t
                .columns
                .into_iter()
                .map(|c| DiscoveredColumn {
                    bigquery_type: bq_type_for(&c.spec.pg_type, c.spec.type_modifier)
                        .name()
                        .to_owned(),
                    name: c.spec.name,
                    pg_type: c.declared_type,
                    nullable: c.nullable,
                })
                .collect(),
            generated_note: if t.generated.is_empty() {
                String::new()
            } else {
                format!("{}; {}", note.why, note.fix)
            },
            generated: t.generated,
            excluded: t.excluded,
            row_filter: t.row_filter,
        })
        .collect())
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
        if !t.generated.is_empty() {
            out.push_str(&format!(
                "  generated, not replicated: {} ({})\n",
                t.generated.join(", "),
                t.generated_note
            ));
        }
        if !t.excluded.is_empty() {
            out.push_str(&format!(
                "  excluded, not replicated: {}\n",
                t.excluded.join(", ")
            ));
        }
        if let Some(row_filter) = &t.row_filter {
            out.push_str(&format!("  rows replicated: WHERE {row_filter}\n"));
        }
    }
    out
}
