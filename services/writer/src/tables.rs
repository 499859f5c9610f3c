//! BigQuery tables of a source table: their shape, their creation, and adding columns.

use crate::bigquery::rest::{FieldSpec, RestClient};
use crate::error::{Result, WriterError};
use pg2bq_core::bq_naming::{BqTableName, COMMIT_TS_COLUMN, OP_COLUMN, SEQ_COLUMN, column_name};
use pg2bq_core::bq_types::{BqType, bq_type_for};
use pg2bq_core::wire::ColumnSpec;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Mutex;

/// One data column as written to BigQuery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataColumn {
    /// BigQuery column name.
    pub name: String,
    /// BigQuery type.
    pub bq_type: BqType,
    /// PostgreSQL type (for value conversion).
    pub pg_type: String,
    /// Part of the key.
    pub key: bool,
}

/// The BigQuery shape of a source table at the time of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    /// The mirror table.
    pub target: BqTableName,
    /// Data columns, in source order.
    pub columns: Vec<DataColumn>,
}

impl TableShape {
    /// The shape of `columns` written to `target`.
    pub fn new(target: BqTableName, columns: &[ColumnSpec]) -> Self {
        let columns = columns
            .iter()
            .map(|c| DataColumn {
                name: column_name(&c.name),
                bq_type: bq_type_for(&c.pg_type, c.type_modifier),
                pg_type: c.pg_type.clone(),
                key: c.key,
            })
            .collect();
        TableShape { target, columns }
    }

    /// Key columns.
    pub fn keys(&self) -> impl Iterator<Item = &DataColumn> {
        self.columns.iter().filter(|c| c.key)
    }

    /// Fields of the mirror table: data, then seq and commit time.
    pub fn target_fields(&self) -> Vec<(String, BqType)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.bq_type))
            .chain([
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
            ])
            .collect()
    }

    /// Fields of the change table: data, then op, seq and commit time; also the proto layout.
    pub fn change_fields(&self) -> Vec<(String, BqType)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.bq_type))
            .chain([
                (OP_COLUMN.to_owned(), BqType::String),
                (SEQ_COLUMN.to_owned(), BqType::String),
                (COMMIT_TS_COLUMN.to_owned(), BqType::Timestamp),
            ])
            .collect()
    }

    /// Clustering columns: the first four key columns of clusterable types.
    fn clustering(&self) -> Vec<String> {
        self.keys()
            .filter(|c| !matches!(c.bq_type, BqType::Float64 | BqType::Bytes | BqType::Json))
            .take(4)
            .map(|c| c.name.clone())
            .collect()
    }
}

/// Tables this instance has made sure of, with the columns they have.
pub struct TableRegistry {
    known: Mutex<HashMap<BqTableName, Arc<HashSet<String>>>>,
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
        }
    }

    fn fields(&self, columns: &[(String, BqType)]) -> Vec<FieldSpec> {
        columns
            .iter()
            .map(|(name, t)| self.field(name, *t))
            .collect()
    }

    /// Makes sure the mirror table and the change table exist with every column of `shape`.
    /// Creation races between instances are harmless: "already exists" counts as success.
    pub async fn ensure(&self, rest: &RestClient, shape: &TableShape) -> Result<()> {
        let wanted = [
            (
                shape.target.clone(),
                self.fields(&shape.target_fields()),
                shape.clustering(),
            ),
            (
                shape.target.change_table(),
                self.fields(&shape.change_fields()),
                Vec::new(),
            ),
        ];
        for (table, fields, clustering) in wanted {
            if self.has_all(&table, &fields).await {
                continue;
            }
            self.ensure_dataset(rest, &table.dataset).await?;
            let columns = ensure_table(rest, &table, &fields, &clustering).await?;
            self.known.lock().await.insert(table, Arc::new(columns));
        }
        Ok(())
    }

    async fn has_all(&self, table: &BqTableName, fields: &[FieldSpec]) -> bool {
        let known = self.known.lock().await;
        known.get(table).is_some_and(|columns| {
            fields
                .iter()
                .all(|f| columns.contains(&f.name.to_ascii_lowercase()))
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

/// Creates the table or adds its missing columns; returns its (lower-cased) column names.
async fn ensure_table(
    rest: &RestClient,
    table: &BqTableName,
    fields: &[FieldSpec],
    clustering: &[String],
) -> Result<HashSet<String>> {
    let existing = match rest.table_schema(table).await? {
        Some(existing) => existing,
        None => {
            if rest.create_table(table, fields, clustering).await? {
                tracing::info!(dataset = %table.dataset, table = %table.table, "created table");
            }
            rest.table_schema(table)
                .await?
                .unwrap_or_else(|| fields.to_vec())
        }
    };
    let by_name: HashMap<String, &FieldSpec> = existing
        .iter()
        .map(|f| (f.name.to_ascii_lowercase(), f))
        .collect();
    let mut missing = Vec::new();
    for wanted in fields {
        match by_name.get(&wanted.name.to_ascii_lowercase()) {
            None => missing.push(wanted.clone()),
            Some(have)
                if have.bq_type != wanted.bq_type && !same_type(&have.bq_type, &wanted.bq_type) =>
            {
                return Err(WriterError::Unwritable(format!(
                    "column {} of {}.{} is {} in BigQuery but the source now needs {}: \
                     an incompatible type change; recreate the table (and backfill it) to follow it",
                    wanted.name, table.dataset, table.table, have.bq_type, wanted.bq_type
                )));
            }
            Some(_) => {}
        }
    }
    let mut all = existing.clone();
    if !missing.is_empty() {
        all.extend(missing.iter().cloned());
        rest.update_schema(table, &all).await?;
        let names: Vec<&str> = missing.iter().map(|f| f.name.as_str()).collect();
        tracing::info!(dataset = %table.dataset, table = %table.table, columns = ?names, "added columns");
    }
    Ok(all.iter().map(|f| f.name.to_ascii_lowercase()).collect())
}

fn same_type(a: &str, b: &str) -> bool {
    matches!((BqType::from_schema_name(a), BqType::from_schema_name(b)), (Some(x), Some(y)) if x == y)
}
