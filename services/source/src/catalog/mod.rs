//! The catalogue reader: which tables exist, and how pg2bq replicates each of them.
//!
//! Capture (for its relations and backfills), `pg2bq discover`, `profile test`, `stream create`
//! and `validate` all describe tables here, so they agree on the columns (pgoutput's order,
//! generated columns left out where pgoutput does not send them, see [`generated`]), the
//! canonical types ([`types`]) and the keys. [`name_problems`]
//! checks the BigQuery names of described tables; [`publishable`] says which tables may be
//! published without making the application's UPDATE and DELETE fail.

pub mod generated;
pub mod publishable;
pub mod tables;
pub mod types;

use crate::error::{Result, SourceError};
use pg2bq_core::bq_naming::collisions::SourceNames;
use pg2bq_core::bq_naming::{DatasetLayout, NameProblem, collisions};
use pg2bq_core::column_rules::ColumnRules;
use pg2bq_core::probe::{FRESHNESS_PROBE_TABLE, freshness_probe};
use pg2bq_core::selection::{Partitions, TableSelection};
use pg2bq_core::wire::{ColumnSpec, TableId};

use generated::GENERATED_LEFT_OUT;
pub use publishable::{Unpublishable, unpublishable};
use std::collections::HashMap;
pub use tables::{ReplicaIdentity, SourceColumn, SourceTable, TableKind};
use tokio_postgres::Client;
pub use types::{ResolvedType, TypeResolver};

/// Reads table descriptions, resolving (and remembering) their column types.
#[derive(Debug, Default)]
pub struct Catalog {
    types: TypeResolver,
    rules: ColumnRules,
}

impl Catalog {
    /// A reader with nothing resolved yet, describing every column of a table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader describing the columns and row filters `rules` select (the columns they leave
    /// out are listed in [`SourceTable::excluded`]).
    pub fn with_rules(rules: ColumnRules) -> Self {
        Catalog {
            types: TypeResolver::default(),
            rules,
        }
    }

    /// The canonical type of `type_oid`.
    pub async fn resolve_type(&mut self, client: &Client, type_oid: u32) -> Result<ResolvedType> {
        self.types.resolve(client, type_oid).await
    }

    /// The named tables that exist, in the order given.
    pub async fn describe(
        &mut self,
        client: &Client,
        tables: &[TableId],
    ) -> Result<Vec<SourceTable>> {
        let schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
        let names: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
        let rows = client
            .query(
                "SELECT c.oid FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(schema_name, table_name, ord) \
                 JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name \
                 JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name \
                 ORDER BY w.ord",
                &[&schemas, &names],
            )
            .await
            .map_err(SourceError::postgres("looking up tables"))?;
        let oids: Vec<u32> = rows.iter().map(|r| r.get(0)).collect();
        self.describe_oids(client, &oids).await
    }

    /// The tables of `publication`, by schema and name.
    pub async fn publication_tables(
        &mut self,
        client: &Client,
        publication: &str,
    ) -> Result<Vec<SourceTable>> {
        let rows = client
            .query(
                "SELECT c.oid FROM pg_catalog.pg_publication_tables p \
                 JOIN pg_catalog.pg_namespace n ON n.nspname = p.schemaname \
                 JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename \
                 WHERE p.pubname = $1 ORDER BY p.schemaname, p.tablename",
                &[&publication],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "listing the tables of publication {publication}"
            )))?;
        let oids: Vec<u32> = rows.iter().map(|r| r.get(0)).collect();
        self.describe_oids(client, &oids).await
    }

    /// The tables `selection` picks among [`candidate_tables`], by schema and name, with the
    /// columns and row filters it selects.
    pub async fn selected_tables(
        &mut self,
        client: &Client,
        selection: &TableSelection,
        state_schema: &str,
    ) -> Result<Vec<SourceTable>> {
        self.rules = selection.columns().clone();
        let picked: Vec<TableId> = candidate_tables(client, state_schema, selection.partitions())
            .await?
            .into_iter()
            .filter(|c| c.selected_by(selection))
            .map(|c| c.table)
            .collect();
        self.describe(client, &picked).await
    }

    async fn describe_oids(&mut self, client: &Client, oids: &[u32]) -> Result<Vec<SourceTable>> {
        if oids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relreplident::text, \
                        c.reltuples::float8, pg_catalog.has_table_privilege(c.oid, 'SELECT'), \
                        {primary_key}, {identity_index} \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = ANY($1::oid[])",
                    primary_key = index_columns("c.oid", "indisprimary"),
                    identity_index = index_columns("c.oid", "indisreplident"),
                ),
                &[&oids],
            )
            .await
            .map_err(SourceError::postgres("describing tables"))?;
        let columns = client
            .query(
                &format!(
                "SELECT a.attrelid, a.attname::text, a.atttypid, a.atttypmod, NOT a.attnotnull, \
                        pg_catalog.format_type(a.atttypid, a.atttypmod), {left_out}, \
                        a.attstorage <> 'p', a.attnum \
                 FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attrelid, a.attnum",
                    left_out = GENERATED_LEFT_OUT,
                ),
                &[&oids],
            )
            .await
            .map_err(SourceError::postgres("describing columns"))?;
        let mut by_table: HashMap<u32, Vec<&tokio_postgres::Row>> = HashMap::new();
        for row in &columns {
            by_table.entry(row.get(0)).or_default().push(row);
        }
        let mut described = HashMap::new();
        for row in &rows {
            let oid: u32 = row.get(0);
            let kind: String = row.get(3);
            let identity: String = row.get(4);
            let primary_key: Vec<String> = row.get(7);
            let identity_index: Vec<String> = row.get(8);
            let replica_identity =
                ReplicaIdentity::from_code(identity.bytes().next().unwrap_or(b'd'));
            let key = replica_identity.key(&primary_key, &identity_index).to_vec();
            let mut table = SourceTable {
                id: TableId {
                    schema: row.get(1),
                    table: row.get(2),
                },
                oid,
                kind: if kind == "p" {
                    TableKind::Partitioned
                } else {
                    TableKind::Table
                },
                replica_identity,
                primary_key,
                columns: Vec::new(),
                generated: Vec::new(),
                excluded: Vec::new(),
                identity_columns: Vec::new(),
                row_filter: None,
                rows_estimated: estimate(row.get(5)),
                selectable: row.get(6),
            };
            table.row_filter = self.rules.row_filter(&table.id).map(str::to_owned);
            for column in by_table.remove(&oid).unwrap_or_default() {
                let name: String = column.get(1);
                if column.get::<_, bool>(6) {
                    table.generated.push(name);
                    continue;
                }
                let identity = match replica_identity {
                    ReplicaIdentity::Full => true,
                    ReplicaIdentity::Nothing => false,
                    _ => key.contains(&name),
                };
                if identity {
                    table.identity_columns.push(name.clone());
                }
                if !self.rules.keeps(&table.id, &name) {
                    table.excluded.push(name);
                    continue;
                }
                let resolved = self.types.resolve(client, column.get(2)).await?;
                let type_modifier: i32 = column.get(3);
                table.columns.push(SourceColumn {
                    spec: ColumnSpec {
                        key: key.contains(&name),
                        name,
                        pg_type: resolved.name,
                        type_modifier: if type_modifier >= 0 {
                            type_modifier
                        } else {
                            resolved.type_modifier
                        },
                    },
                    declared_type: column.get(5),
                    nullable: column.get(4),
                    toastable: column.get(7),
                    type_oid: column.get(2),
                    attnum: column.get(8),
                });
            }
            described.insert(oid, table);
        }
        Ok(oids
            .iter()
            .filter_map(|oid| described.remove(oid))
            .collect())
    }
}

/// Every BigQuery name problem of a stream's tables under `layout` (see
/// [`pg2bq_core::bq_naming::collisions()`]): the `tables` it replicates and the freshness probe
/// table of `state_schema`, which is written to BigQuery whenever it exists.
pub fn name_problems(
    layout: &DatasetLayout,
    tables: &[SourceTable],
    state_schema: &str,
) -> Vec<NameProblem> {
    let mut names: Vec<SourceNames> = tables.iter().map(SourceTable::source_names).collect();
    let probe = freshness_probe(state_schema);
    if !names.iter().any(|t| t.id == probe) {
        names.push(SourceNames {
            id: probe,
            columns: Vec::new(),
        });
    }
    collisions(layout, &names)
}

/// `reltuples` as a row count: -1 when never analysed.
fn estimate(reltuples: f64) -> i64 {
    if reltuples < 0.0 {
        -1
    } else {
        reltuples.min(i64::MAX as f64) as i64
    }
}

/// A table a stream may replicate, with the partitioned tables it is a partition of (parent
/// first; empty unless it is a partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The table.
    pub table: TableId,
    /// Its ancestors, parent first.
    pub ancestors: Vec<TableId>,
}

impl Candidate {
    /// Whether `selection` picks it (through an ancestor, for a partition).
    pub fn selected_by(&self, selection: &TableSelection) -> bool {
        if self.ancestors.is_empty() {
            selection.matches(&self.table)
        } else {
            selection.matches_partition(&self.table, &self.ancestors)
        }
    }
}

/// Tables a stream may replicate, outside the system schemas and pg2bq's state schema, plus the
/// state schema's freshness probe table if it exists. By schema and name. Through the root
/// ([`Partitions::Root`]): ordinary and partitioned tables, not partitions. As leaves:
/// ordinary tables and leaf partitions (with their ancestors), not partitioned tables.
pub async fn candidate_tables(
    client: &Client,
    state_schema: &str,
    partitions: Partitions,
) -> Result<Vec<Candidate>> {
    let kinds = match partitions {
        Partitions::Root => "c.relkind IN ('r', 'p') AND NOT c.relispartition",
        Partitions::Leaves => "c.relkind = 'r'",
    };
    let ancestors = |column: &str| {
        format!(
            "ARRAY(SELECT {column}::text FROM pg_catalog.pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, ord) \
                   JOIN pg_catalog.pg_class ac ON ac.oid = a.relid \
                   JOIN pg_catalog.pg_namespace an ON an.oid = ac.relnamespace \
                   WHERE a.relid <> c.oid ORDER BY a.ord)"
        )
    };
    let (ancestor_schemas, ancestor_names) = if partitions == Partitions::Leaves {
        (ancestors("an.nspname"), ancestors("ac.relname"))
    } else {
        ("'{}'::text[]".to_owned(), "'{}'::text[]".to_owned())
    };
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, {ancestor_schemas}, {ancestor_names} \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE {kinds} \
                   AND (n.nspname NOT IN ('pg_catalog', 'information_schema', $1) \
                        OR (n.nspname = $1 AND c.relname = $2)) \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                 ORDER BY 1, 2"
            ),
            &[&state_schema, &FRESHNESS_PROBE_TABLE],
        )
        .await
        .map_err(SourceError::postgres("listing tables"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let schemas: Vec<String> = row.get(2);
            let names: Vec<String> = row.get(3);
            Candidate {
                table: table_id(row),
                ancestors: schemas
                    .into_iter()
                    .zip(names)
                    .map(|(schema, table)| TableId { schema, table })
                    .collect(),
            }
        })
        .collect())
}

/// The primary key columns of the table with OID `relation_id`, in key order (empty if none).
pub async fn primary_key(client: &Client, relation_id: u32) -> Result<Vec<String>> {
    let row = client
        .query_one(
            &format!("SELECT {}", index_columns("$1", "indisprimary")),
            &[&relation_id],
        )
        .await
        .map_err(SourceError::postgres(format!(
            "looking up the primary key of relation {relation_id}"
        )))?;
    Ok(row.get(0))
}

/// SQL for the column names, in index order, of the index of `relation` (an OID expression)
/// with the boolean `pg_index` column `flag` set (`indisprimary`, `indisreplident`); `{}` if none.
fn index_columns(relation: &str, flag: &str) -> String {
    format!(
        "COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord) \
                   FROM pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                   WHERE i.indrelid = {relation} AND i.{flag}), '{{}}')"
    )
}

/// A table named by the first two columns (schema, table) of a row.
pub fn table_id(row: &tokio_postgres::Row) -> TableId {
    TableId {
        schema: row.get(0),
        table: row.get(1),
    }
}
