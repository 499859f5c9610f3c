//! The source tables of a publication, with their columns as pg2bq maps them.

use crate::error::{CliError, Result};
use pg2bq_core::pg_types::builtin_type_name;
use pg2bq_core::wire::{ColumnSpec, TableId};
use tokio_postgres::Client;

/// A source table and its columns.
#[derive(Debug, Clone)]
pub struct SourceTable {
    /// Schema and name.
    pub id: TableId,
    /// Columns in order, with canonical type names and key flags.
    pub columns: Vec<ColumnSpec>,
}

/// The tables of `publication`, ordered by schema and name.
pub async fn publication_tables(client: &Client, publication: &str) -> Result<Vec<SourceTable>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, \
                    COALESCE(NULLIF(t.typbasetype, 0), a.atttypid) AS type_oid, \
                    t.typtype::text, t.typname::text, \
                    CASE WHEN a.atttypmod >= 0 THEN a.atttypmod ELSE t.typtypmod END AS typmod, \
                    COALESCE(a.attnum = ANY(i.indkey), false) AS key, \
                    t.typcategory::text \
             FROM pg_catalog.pg_publication_tables pt \
             JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname \
             JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary \
             WHERE pt.pubname = $1 \
             ORDER BY 1, 2, a.attnum",
            &[&publication],
        )
        .await
        .map_err(CliError::postgres(format!("listing the tables of publication {publication}")))?;
    let mut tables: Vec<SourceTable> = Vec::new();
    for row in rows {
        let id = TableId {
            schema: row.get(0),
            table: row.get(1),
        };
        let type_oid: u32 = row.get(3);
        let typtype: String = row.get(4);
        let typname: String = row.get(5);
        let category: String = row.get(8);
        let pg_type = match builtin_type_name(type_oid) {
            Some(name) => name.to_owned(),
            None if typtype == "e" => "enum".to_owned(),
            None if category == "A" => format!("{}[]", typname.trim_start_matches('_')),
            None => typname,
        };
        let column = ColumnSpec {
            name: row.get(2),
            pg_type,
            type_modifier: row.get(6),
            key: row.get(7),
        };
        match tables.last_mut() {
            Some(last) if last.id == id => last.columns.push(column),
            _ => tables.push(SourceTable {
                id,
                columns: vec![column],
            }),
        }
    }
    Ok(tables)
}
