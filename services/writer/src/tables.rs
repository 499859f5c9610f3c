//! The table registry shared by the write modes: creating BigQuery tables, and adding the
//! columns a batch brings. Each mode says which tables it wants ([`TableSpec`]); the registry
//! makes sure of them.
//!
//! Columns are only ever added (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`, safe when several
//! writers add the same column at once), never dropped; an incompatible type change is refused.
//! Each instance remembers the columns it saw per table, in table order, and the metadata
//! ([`TableMeta`]) of staging tables.

use crate::error::{Result, WriterError};
use crate::table_meta::{TableKind, TableMeta, description, generation_mark};
use pg2bq_bigquery::rest::{FieldSpec, RestClient, TableOptions};
use pg2bq_core::bq_naming::{BqTableName, KEY_COLUMN_DESCRIPTION};
use pg2bq_core::bq_types::BqType;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Columns of a table, in table order.
pub type TableColumns = Arc<Vec<FieldSpec>>;

/// A table as a write mode wants it: its columns and its settings.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The table.
    pub table: BqTableName,
    /// Its columns, all nullable (see [`TableRegistry::fields`]).
    pub fields: Vec<FieldSpec>,
    /// Clustering, primary key, `max_staleness`.
    pub options: TableOptions,
}

/// Tables this instance has made sure of.
pub struct TableRegistry {
    rest: RestClient,
    known: Mutex<HashMap<BqTableName, TableColumns>>,
    metas: Mutex<HashMap<BqTableName, TableMeta>>,
    datasets: Mutex<HashSet<String>>,
    emulator: bool,
}

impl TableRegistry {
    /// A registry working through `rest`, for real BigQuery or for an emulator (see
    /// [`TableRegistry::fields`]).
    pub fn new(rest: RestClient, emulator: bool) -> Self {
        TableRegistry {
            rest,
            known: Mutex::new(HashMap::new()),
            metas: Mutex::new(HashMap::new()),
            datasets: Mutex::new(HashSet::new()),
            emulator,
        }
    }

    /// Nullable columns of a table schema. bqemulator has no BIGNUMERIC (its DuckDB decimals
    /// stop at 38 digits): against an emulator such columns are STRING, holding the same decimal
    /// strings the Storage Write API would convert.
    pub fn fields(&self, columns: &[(String, BqType)]) -> Vec<FieldSpec> {
        columns
            .iter()
            .map(|(name, bq_type)| {
                let type_name = match bq_type {
                    BqType::BigNumeric if self.emulator => BqType::String.name(),
                    other => other.name(),
                };
                FieldSpec {
                    name: name.to_owned(),
                    bq_type: type_name.to_owned(),
                    mode: "NULLABLE".to_owned(),
                    description: None,
                }
            })
            .collect()
    }

    /// Makes sure every table of `wanted` exists with all its columns (creating the dataset, the
    /// table or the missing columns); returns each table's columns, in the order of `wanted`.
    /// Creation races between instances are harmless.
    pub async fn ensure<const N: usize>(
        &self,
        wanted: [TableSpec; N],
    ) -> Result<[TableColumns; N]> {
        for spec in &wanted {
            if self.has_all(&spec.table, &spec.fields).await {
                continue;
            }
            self.ensure_dataset(&spec.table.dataset).await?;
            let columns = ensure_table(&self.rest, spec, self.emulator).await?;
            self.known
                .lock()
                .await
                .insert(spec.table.clone(), Arc::new(columns));
        }
        let known = self.known.lock().await;
        Ok(wanted.map(|spec| Arc::clone(known.get(&spec.table).expect("ensured above"))))
    }

    /// The metadata of the staging table `table`, made to record `wanted`: written when the
    /// table has none (it was made by an older release: its key then comes from its columns'
    /// descriptions), extended with `wanted`'s unchanged columns. A different kind or key is
    /// refused: the table's key is the one it was created with.
    pub async fn ensure_meta(&self, table: &BqTableName, wanted: &TableMeta) -> Result<TableMeta> {
        if let Some(known) = self.metas.lock().await.get(table)
            && fits(known, wanted)
        {
            return Ok(known.clone());
        }
        // Read, check and extend; a concurrent writer may extend it at the same time, so the
        // result is read back until it holds what this one needs.
        for _ in 0..5 {
            let info = self.rest.table(table).await?.ok_or_else(|| {
                WriterError::BigQuery(pg2bq_bigquery::BigQueryError::Transient(format!(
                    "table {}.{} vanished while being described",
                    table.dataset, table.table
                )))
            })?;
            let text = info.description.as_deref().unwrap_or_default();
            let described = TableMeta::from_description(text);
            let mark = generation_mark(text);
            let recorded = match &described {
                Some(meta) => meta.clone(),
                // Made empty at a new generation: what this batch wants.
                None if mark.is_some() => wanted.clone(),
                None => older_release_meta(&info.fields, wanted),
            };
            // A log's key only chooses how snapshots are kept; a mirror's is what its rows are
            // merged by, and may not change.
            let key_changed = recorded.kind == TableKind::Mirror && recorded.keys != wanted.keys;
            if recorded.kind != wanted.kind || key_changed {
                return Err(WriterError::Unwritable(format!(
                    "the key of {} changed: BigQuery table {}.{} was made for a {:?} keyed by ({}), \
                     and the source's changes now come {} ({}); recreate the BigQuery tables and \
                     copy the table again with `pg2bq backfill {} --recreate`, then \
                     `pg2bq quarantine retry`",
                    wanted.source,
                    table.dataset,
                    table.table,
                    recorded.kind,
                    recorded.keys.join(", "),
                    if wanted.keys.is_empty() {
                        "without a key"
                    } else {
                        "keyed by"
                    },
                    wanted.keys.join(", "),
                    wanted.source,
                )));
            }
            if recorded.covers_unchanged(&wanted.unchanged) && described.is_some() {
                self.metas
                    .lock()
                    .await
                    .insert(table.clone(), recorded.clone());
                return Ok(recorded);
            }
            let next = recorded.with_unchanged(&wanted.unchanged);
            self.rest
                .set_description(table, &description(Some(&next), mark))
                .await?;
        }
        Err(WriterError::BigQuery(
            pg2bq_bigquery::BigQueryError::Transient(format!(
                "the description of {}.{} keeps changing under concurrent writers",
                table.dataset, table.table
            )),
        ))
    }

    /// Forgets what this instance knows of `tables`, so that the next write reads them again
    /// (an append failed: one of them may have been deleted or changed behind its back).
    pub async fn forget(&self, tables: &[BqTableName]) {
        let mut known = self.known.lock().await;
        let mut metas = self.metas.lock().await;
        for table in tables {
            known.remove(table);
            metas.remove(table);
        }
    }

    /// Forgets `target` and its staging table (see [`TableRegistry::forget`]).
    pub async fn forget_target(&self, target: &BqTableName) {
        self.forget(&[target.clone(), target.change_table()]).await;
    }

    async fn has_all(&self, table: &BqTableName, fields: &[FieldSpec]) -> bool {
        let known = self.known.lock().await;
        known.get(table).is_some_and(|columns| {
            fields
                .iter()
                .all(|f| columns.iter().any(|c| c.name.eq_ignore_ascii_case(&f.name)))
        })
    }

    async fn ensure_dataset(&self, dataset: &str) -> Result<()> {
        if self.datasets.lock().await.contains(dataset) {
            return Ok(());
        }
        self.rest.ensure_dataset(dataset).await?;
        self.datasets.lock().await.insert(dataset.to_owned());
        Ok(())
    }
}

/// Creates the table or adds its missing columns; returns all its columns in table order.
async fn ensure_table(
    rest: &RestClient,
    spec: &TableSpec,
    emulator: bool,
) -> Result<Vec<FieldSpec>> {
    let (table, fields) = (&spec.table, &spec.fields);
    let mut columns = match rest.table_schema(table).await? {
        Some(existing) => existing,
        None => {
            if rest.create_table(table, fields, &spec.options).await? {
                tracing::info!(dataset = %table.dataset, table = %table.table, "created table");
            }
            rest.table_schema(table)
                .await?
                .unwrap_or_else(|| fields.to_vec())
        }
    };
    let mut added = Vec::new();
    for wanted in fields {
        match columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&wanted.name))
        {
            None => {
                rest.add_column(table, wanted).await?;
                columns.push(wanted.clone());
                added.push(wanted.name.clone());
            }
            Some(have) if !same_type(&have.bq_type, &wanted.bq_type) => {
                return Err(WriterError::Unwritable(format!(
                    "column {} of {}.{} is {} in BigQuery but the source now needs {}: \
                     an incompatible type change; recreate the table (and backfill it) to follow it",
                    wanted.name, table.dataset, table.table, have.bq_type, wanted.bq_type
                )));
            }
            Some(_) => {}
        }
    }
    if !added.is_empty() && emulator {
        rest.patch_schema(table, &columns).await?;
    }
    if !added.is_empty() {
        tracing::info!(dataset = %table.dataset, table = %table.table, columns = ?added, "added columns");
    }
    Ok(columns)
}

/// Whether `known` holds everything `wanted` asks for.
fn fits(known: &TableMeta, wanted: &TableMeta) -> bool {
    known.kind == wanted.kind
        && known.keys == wanted.keys
        && known.covers_unchanged(&wanted.unchanged)
}

/// The metadata of a staging table made before tables carried it: its key columns are the
/// ones whose description marks them.
fn older_release_meta(fields: &[FieldSpec], wanted: &TableMeta) -> TableMeta {
    let keys = fields
        .iter()
        .filter(|f| f.description.as_deref() == Some(KEY_COLUMN_DESCRIPTION))
        .map(|f| f.name.clone())
        .collect();
    TableMeta {
        keys,
        unchanged: Vec::new(),
        ..wanted.clone()
    }
}

fn same_type(a: &str, b: &str) -> bool {
    a == b
        || matches!((BqType::from_schema_name(a), BqType::from_schema_name(b)), (Some(x), Some(y)) if x == y)
}
