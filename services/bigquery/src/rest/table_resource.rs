//! The table resource pg2bq creates: columns, clustering, key, partitioning, staleness.

use super::FieldSpec;
use pg2bq_core::bq_naming::BqTableName;
use serde_json::{Value as Json, json};

/// Table settings beyond the columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Clustering columns (at most four).
    pub clustering: Vec<String>,
    /// `PRIMARY KEY (...) NOT ENFORCED` columns.
    pub primary_key: Vec<String>,
    /// `max_staleness` as an INTERVAL literal, e.g. `0-0 0 0:15:0` (native CDC tables).
    pub max_staleness: Option<String>,
    /// The table's description.
    pub description: Option<String>,
    /// Time partitioning by a TIMESTAMP column, hourly or daily.
    pub partitioning: Option<Partitioning>,
}

/// How a table is partitioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// By time: of a DATE, TIMESTAMP or DATETIME column, or of the ingestion (no column).
    Time {
        /// The column, or `None` for ingestion time.
        field: Option<String>,
        /// One partition per this unit.
        unit: TimeUnit,
    },
    /// By ranges of an INT64 column: `[start, end)` in steps of `interval`.
    Range {
        /// The column.
        field: String,
        /// The first partition's start.
        start: i64,
        /// The end of the last partition (exclusive).
        end: i64,
        /// The width of each partition.
        interval: i64,
    },
}

/// The unit of a time partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// An hour.
    Hour,
    /// A day.
    Day,
    /// A month.
    Month,
    /// A year.
    Year,
}

impl TimeUnit {
    /// BigQuery's name of the unit.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Hour => "HOUR",
            TimeUnit::Day => "DAY",
            TimeUnit::Month => "MONTH",
            TimeUnit::Year => "YEAR",
        }
    }
}

/// The REST table resource that creates `table`.
pub fn table_resource(
    project: &str,
    table: &BqTableName,
    fields: &[FieldSpec],
    options: &TableOptions,
) -> Json {
    let mut body = json!({
        "tableReference": {"projectId": project, "datasetId": table.dataset, "tableId": table.table},
        "schema": {"fields": fields.iter().map(FieldSpec::to_json).collect::<Vec<_>>()},
    });
    if !options.clustering.is_empty() {
        body["clustering"] = json!({"fields": options.clustering});
    }
    if !options.primary_key.is_empty() {
        body["tableConstraints"] = json!({"primaryKey": {"columns": options.primary_key}});
    }
    if let Some(max_staleness) = &options.max_staleness {
        body["maxStaleness"] = json!(max_staleness);
    }
    if let Some(description) = &options.description {
        body["description"] = json!(description);
    }
    match &options.partitioning {
        Some(Partitioning::Time { field, unit }) => {
            body["timePartitioning"] = json!({"type": unit.name()});
            if let Some(field) = field {
                body["timePartitioning"]["field"] = json!(field);
            }
        }
        Some(Partitioning::Range {
            field,
            start,
            end,
            interval,
        }) => {
            body["rangePartitioning"] = json!({
                "field": field,
                "range": {
                    "start": start.to_string(),
                    "end": end.to_string(),
                    "interval": interval.to_string(),
                },
            });
        }
        None => {}
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_resource_carries_key_clustering_and_staleness() {
        let table = BqTableName {
            dataset: "d".into(),
            table: "t".into(),
        };
        let fields = [FieldSpec {
            name: "id".into(),
            bq_type: "INT64".into(),
            mode: "NULLABLE".into(),
            description: Some("pg2bq: primary key column".into()),
        }];
        let options = TableOptions {
            clustering: vec!["id".into()],
            primary_key: vec!["id".into()],
            max_staleness: Some("0-0 0 0:15:0".into()),
            description: Some("about t".into()),
            partitioning: Some(Partitioning::Time {
                field: Some("at".into()),
                unit: TimeUnit::Hour,
            }),
        };
        let body = table_resource("p", &table, &fields, &options);
        assert_eq!(
            body["timePartitioning"],
            json!({"type": "HOUR", "field": "at"})
        );
        assert_eq!(body["description"], "about t");
        assert_eq!(body["tableReference"]["tableId"], "t");
        assert_eq!(body["tableConstraints"]["primaryKey"]["columns"][0], "id");
        assert_eq!(body["clustering"]["fields"][0], "id");
        assert_eq!(body["maxStaleness"], "0-0 0 0:15:0");
        assert_eq!(
            body["schema"]["fields"][0]["description"],
            "pg2bq: primary key column"
        );
        let plain = table_resource("p", &table, &fields, &TableOptions::default());
        assert!(plain.get("tableConstraints").is_none() && plain.get("maxStaleness").is_none());
        assert!(plain.get("timePartitioning").is_none());
        let ranged = TableOptions {
            partitioning: Some(Partitioning::Range {
                field: "n".into(),
                start: 0,
                end: 100,
                interval: 10,
            }),
            ..TableOptions::default()
        };
        assert_eq!(
            table_resource("p", &table, &fields, &ranged)["rangePartitioning"],
            json!({"field": "n", "range": {"start": "0", "end": "100", "interval": "10"}})
        );
        let ingestion = TableOptions {
            partitioning: Some(Partitioning::Time {
                field: None,
                unit: TimeUnit::Day,
            }),
            ..TableOptions::default()
        };
        assert_eq!(
            table_resource("p", &table, &fields, &ingestion)["timePartitioning"],
            json!({"type": "DAY"})
        );
    }
}
