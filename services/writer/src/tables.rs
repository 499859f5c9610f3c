//! The BigQuery tables of a source table: creation, and adding the columns a batch brings.
//!
//! Columns are only ever added (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`, safe when several
//! writers add the same column at once), never dropped; an incompatible type change is refused.
//! Each instance remembers the columns it saw per table, in table order.

use crate::error::{Result, WriterError};
use crate::shape::TableShape;
use pg2bq_bigquery::rest::{FieldSpec, RestClient, TableOptions};
use pg2bq_core::bq_naming::{BqTableName, KEY_COLUMN_DESCRIPTION};
use pg2bq_core::bq_types::BqType;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Columns of a table, in table order.
pub type TableColumns = Arc<Vec<FieldSpec>>;

/// Tables this instance has made sure of.
pub struct TableRegistry {
    known: Mutex<HashMap<BqTableName, TableColumns>>,
    datasets: Mutex<HashSet<String>>,
    emulator: bool,
}

impl TableRegistry {
    /// A registry for real BigQuery, or for an emulator (see [`TableRegistry::field`]).
    pub fn new(emulator: bool) -> Self {
        TableRegistry {
            known: Mutex::new(HashMap::new()),
            datasets: Mutex::new(HashSet::new()),
            emulator,
        }
    }

    /// A nullable column of the table schema. bqemulator has no BIGNUMERIC (its DuckDB decimals
    /// stop at 38 digits): against an emulator such columns are STRING, holding the same decimal
    /// strings the Storage Write API would convert.
    fn field(&self, name: &str, bq_type: BqType) -> FieldSpec {
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
    }

    fn fields(&self, columns: &[(String, BqType)]) -> Vec<FieldSpec> {
        columns
            .iter()
            .map(|(name, t)| self.field(name, *t))
            .collect()
    }

    /// Makes sure the mirror table and the change table exist with every column of `shape`;
    /// returns the change table's columns. Creation races between instances are harmless.
    /// The change table's key columns carry [`KEY_COLUMN_DESCRIPTION`], so that any writer can
    /// merge it later; the mirror table declares its primary key (`NOT ENFORCED`).
    pub async fn ensure_merged(
        &self,
        rest: &RestClient,
        shape: &TableShape,
    ) -> Result<TableColumns> {
        let keys = shape.key_names();
        let mut change_fields = self.fields(&shape.change_fields());
        for field in change_fields.iter_mut().filter(|f| keys.contains(&f.name)) {
            field.description = Some(KEY_COLUMN_DESCRIPTION.to_owned());
        }
        let change_table = shape.target.change_table();
        let wanted = vec![
            TableSpec {
                table: shape.target.clone(),
                fields: self.fields(&shape.target_fields()),
                options: TableOptions {
                    clustering: shape.clustering(),
                    primary_key: keys,
                    max_staleness: None,
                },
            },
            TableSpec {
                table: change_table.clone(),
                fields: change_fields,
                options: TableOptions::default(),
            },
        ];
        self.ensure_all(rest, wanted, &change_table).await
    }

    /// Makes sure the append-only table of `shape` exists with all its columns; returns them.
    pub async fn ensure_appended(
        &self,
        rest: &RestClient,
        shape: &TableShape,
    ) -> Result<TableColumns> {
        let wanted = vec![TableSpec {
            table: shape.target.clone(),
            fields: self.fields(&shape.append_fields()),
            options: TableOptions::default(),
        }];
        self.ensure_all(rest, wanted, &shape.target).await
    }

    /// Makes sure the native CDC mirror table of `shape` exists: primary key, clustering on it,
    /// and `max_staleness`; returns its columns.
    pub async fn ensure_native(
        &self,
        rest: &RestClient,
        shape: &TableShape,
        max_staleness: &str,
    ) -> Result<TableColumns> {
        let wanted = vec![TableSpec {
            table: shape.target.clone(),
            fields: self.fields(&shape.target_fields()),
            options: TableOptions {
                clustering: shape.clustering(),
                primary_key: shape.key_names(),
                max_staleness: Some(max_staleness.to_owned()),
            },
        }];
        self.ensure_all(rest, wanted, &shape.target).await
    }

    async fn ensure_all(
        &self,
        rest: &RestClient,
        wanted: Vec<TableSpec>,
        written: &BqTableName,
    ) -> Result<TableColumns> {
        for spec in wanted {
            if self.has_all(&spec.table, &spec.fields).await {
                continue;
            }
            self.ensure_dataset(rest, &spec.table.dataset).await?;
            let columns = ensure_table(rest, &spec, self.emulator).await?;
            self.known
                .lock()
                .await
                .insert(spec.table, Arc::new(columns));
        }
        let known = self.known.lock().await;
        Ok(Arc::clone(known.get(written).expect("ensured above")))
    }

    async fn has_all(&self, table: &BqTableName, fields: &[FieldSpec]) -> bool {
        let known = self.known.lock().await;
        known.get(table).is_some_and(|columns| {
            fields
                .iter()
                .all(|f| columns.iter().any(|c| c.name.eq_ignore_ascii_case(&f.name)))
        })
    }

    async fn ensure_dataset(&self, rest: &RestClient, dataset: &str) -> Result<()> {
        if self.datasets.lock().await.contains(dataset) {
            return Ok(());
        }
        rest.ensure_dataset(dataset).await?;
        self.datasets.lock().await.insert(dataset.to_owned());
        Ok(())
    }
}

/// A table as pg2bq wants it.
struct TableSpec {
    table: BqTableName,
    fields: Vec<FieldSpec>,
    options: TableOptions,
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

fn same_type(a: &str, b: &str) -> bool {
    a == b
        || matches!((BqType::from_schema_name(a), BqType::from_schema_name(b)), (Some(x), Some(y)) if x == y)
}
