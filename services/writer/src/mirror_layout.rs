//! How mirror tables are laid out when the writer makes them: partitioning and clustering, per
//! source table or by default (`PG2BQ_BQ_PARTITIONING`, `PG2BQ_BQ_CLUSTERING`).
//!
//! Each setting is a list of `<table>=<spec>` entries separated by `;`, where `<table>` is a
//! source table (`schema.table`) or `*` (every other table). Column names are the mirror's
//! BigQuery column names.
//!
//! - partitioning: `day(col)`, `hour(col)`, `month(col)`, `year(col)` (a DATE, TIMESTAMP or
//!   DATETIME column), `ingestion(day)` (or `hour`, `month`, `year`), `range(col, start, end,
//!   interval)` (an INT64 column), `none` (the default);
//! - clustering: up to four columns `a, b`, `key` (the key columns: the default) or `none`.
//!
//! The layout is checked against the table's columns when its tables are made: a column that
//! does not exist or cannot partition or cluster is a configuration error naming the fix.

use crate::error::{Result, WriterError};
use crate::shape::TableShape;
use pg2bq_bigquery::rest::{Partitioning, TimeUnit};
use pg2bq_core::bq_types::BqType;
use std::collections::BTreeMap;

/// A table's clustering choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clustering {
    /// The key columns (clusterable ones, at most four).
    Key,
    /// These columns.
    Columns(Vec<String>),
    /// None.
    None,
}

/// The layout settings, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorLayout {
    partitioning: BTreeMap<String, Option<Partitioning>>,
    clustering: BTreeMap<String, Clustering>,
}

impl MirrorLayout {
    /// Parses `PG2BQ_BQ_PARTITIONING` and `PG2BQ_BQ_CLUSTERING`.
    pub fn parse(partitioning: Option<&str>, clustering: Option<&str>) -> Result<Self> {
        let mut layout = MirrorLayout::default();
        for (table, spec) in entries(partitioning.unwrap_or_default(), "PG2BQ_BQ_PARTITIONING")? {
            layout
                .partitioning
                .insert(table, parse_partitioning(&spec)?);
        }
        for (table, spec) in entries(clustering.unwrap_or_default(), "PG2BQ_BQ_CLUSTERING")? {
            layout.clustering.insert(table, parse_clustering(&spec)?);
        }
        Ok(layout)
    }

    /// The partitioning and clustering of the mirror of `source` (`schema.table`), checked
    /// against `shape`.
    pub fn of(
        &self,
        source: &str,
        shape: &TableShape,
    ) -> Result<(Option<Partitioning>, Vec<String>)> {
        let partitioning = pick(&self.partitioning, source).flatten();
        let clustering = match pick(&self.clustering, source).unwrap_or(Clustering::Key) {
            Clustering::Key => shape.clustering(),
            Clustering::None => Vec::new(),
            Clustering::Columns(columns) => columns,
        };
        let type_of = |column: &str| {
            shape
                .columns
                .iter()
                .find(|c| c.name == column)
                .map(|c| c.bq_type)
                .ok_or_else(|| {
                    config(format!(
                        "the mirror of {source} has no column {column}; name one of its BigQuery \
                         columns ({})",
                        shape
                            .columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        };
        match &partitioning {
            Some(Partitioning::Time {
                field: Some(field), ..
            }) => {
                let t = type_of(field)?;
                if !matches!(t, BqType::Date | BqType::Timestamp | BqType::Datetime) {
                    return Err(config(format!(
                        "{source}: column {field} is {t:?}, and time partitioning needs a DATE, \
                         TIMESTAMP or DATETIME column; choose another, or `ingestion(day)`"
                    )));
                }
            }
            Some(Partitioning::Range { field, .. }) => {
                let t = type_of(field)?;
                if t != BqType::Int64 {
                    return Err(config(format!(
                        "{source}: column {field} is {t:?}, and range partitioning needs an \
                         INT64 column"
                    )));
                }
            }
            _ => {}
        }
        for column in &clustering {
            let t = type_of(column)?;
            if matches!(t, BqType::Float64 | BqType::Bytes | BqType::Json) {
                return Err(config(format!(
                    "{source}: column {column} is {t:?}, which BigQuery cannot cluster by; \
                     choose other columns in PG2BQ_BQ_CLUSTERING"
                )));
            }
        }
        Ok((partitioning, clustering))
    }
}

/// The entry of `source` in `map`, or the default one (`*`).
fn pick<T: Clone>(map: &BTreeMap<String, T>, source: &str) -> Option<T> {
    map.get(source).or_else(|| map.get("*")).cloned()
}

fn config(message: impl std::fmt::Display) -> WriterError {
    WriterError::Config(format!("mirror layout: {message}"))
}

/// `table=spec` entries of a setting.
fn entries(text: &str, setting: &str) -> Result<Vec<(String, String)>> {
    text.split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (table, spec) = entry.split_once('=').ok_or_else(|| {
                config(format!(
                    "{setting}: `{entry}` is not `<schema.table or *>=<spec>`"
                ))
            })?;
            let table = table.trim();
            if table != "*" && !table.contains('.') {
                return Err(config(format!(
                    "{setting}: `{table}` is neither `schema.table` nor `*`"
                )));
            }
            Ok((table.to_owned(), spec.trim().to_owned()))
        })
        .collect()
}

fn time_unit(text: &str) -> Option<TimeUnit> {
    match text.trim().to_ascii_lowercase().as_str() {
        "hour" => Some(TimeUnit::Hour),
        "day" => Some(TimeUnit::Day),
        "month" => Some(TimeUnit::Month),
        "year" => Some(TimeUnit::Year),
        _ => None,
    }
}

fn parse_partitioning(spec: &str) -> Result<Option<Partitioning>> {
    if spec.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || {
        config(format!(
            "PG2BQ_BQ_PARTITIONING: `{spec}` is none of day(col), hour(col), month(col), \
             year(col), ingestion(day|hour|month|year), range(col, start, end, interval), none"
        ))
    };
    let (kind, rest) = spec.split_once('(').ok_or_else(bad)?;
    let args: Vec<&str> = rest
        .strip_suffix(')')
        .ok_or_else(bad)?
        .split(',')
        .map(str::trim)
        .collect();
    let kind = kind.trim().to_ascii_lowercase();
    match (kind.as_str(), args.as_slice()) {
        ("ingestion", [unit]) => Ok(Some(Partitioning::Time {
            field: None,
            unit: time_unit(unit).ok_or_else(bad)?,
        })),
        ("range", [field, start, end, interval]) => {
            let number = |n: &str| n.parse::<i64>().map_err(|_| bad());
            let (start, end, interval) = (number(start)?, number(end)?, number(interval)?);
            if interval <= 0 || end <= start {
                return Err(config(format!(
                    "PG2BQ_BQ_PARTITIONING: `{spec}` needs start < end and an interval above 0"
                )));
            }
            Ok(Some(Partitioning::Range {
                field: (*field).to_owned(),
                start,
                end,
                interval,
            }))
        }
        (unit, [field]) if !field.is_empty() => Ok(Some(Partitioning::Time {
            field: Some((*field).to_owned()),
            unit: time_unit(unit).ok_or_else(bad)?,
        })),
        _ => Err(bad()),
    }
}

fn parse_clustering(spec: &str) -> Result<Clustering> {
    if spec.eq_ignore_ascii_case("key") {
        return Ok(Clustering::Key);
    }
    if spec.eq_ignore_ascii_case("none") {
        return Ok(Clustering::None);
    }
    let columns: Vec<String> = spec
        .split(',')
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if columns.is_empty() || columns.len() > 4 {
        return Err(config(format!(
            "PG2BQ_BQ_CLUSTERING: `{spec}` names {} columns; BigQuery clusters by 1 to 4 (or \
             `key`, `none`)",
            columns.len()
        )));
    }
    Ok(Clustering::Columns(columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::wire::ColumnSpec;

    fn shape() -> TableShape {
        let column = |name: &str, pg_type: &str, key: bool| ColumnSpec {
            name: name.into(),
            pg_type: pg_type.into(),
            type_modifier: -1,
            key,
        };
        TableShape::new(
            pg2bq_core::bq_naming::BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &[
                column("id", "int8", true),
                column("at", "timestamptz", false),
                column("n", "int4", false),
                column("price", "float8", false),
            ],
        )
    }

    #[test]
    fn tables_take_their_entry_or_the_default() {
        let layout = MirrorLayout::parse(
            Some("s.t = day(at); s.r = range(n, 0, 1000, 10); * = ingestion(hour)"),
            Some("s.t=at,n; *=key"),
        )
        .expect("valid");
        let (p, c) = layout.of("s.t", &shape()).expect("fits");
        assert_eq!(
            p,
            Some(Partitioning::Time {
                field: Some("at".into()),
                unit: TimeUnit::Day
            })
        );
        assert_eq!(c, vec!["at".to_owned(), "n".into()]);
        let (p, c) = layout.of("s.r", &shape()).expect("fits");
        assert!(matches!(p, Some(Partitioning::Range { interval: 10, .. })));
        assert_eq!(c, vec!["id".to_owned()]);
        let (p, _) = layout.of("s.other", &shape()).expect("fits");
        assert_eq!(
            p,
            Some(Partitioning::Time {
                field: None,
                unit: TimeUnit::Hour
            })
        );
        let plain = MirrorLayout::parse(None, None).expect("empty");
        assert_eq!(
            plain.of("s.t", &shape()).expect("fits"),
            (None, vec!["id".to_owned()])
        );
    }

    #[test]
    fn wrong_settings_and_wrong_columns_name_the_fix() {
        for (partitioning, clustering) in [
            (Some("s.t=week(at)"), None),
            (Some("t=day(at)"), None),
            (Some("s.t=range(n, 10, 0, 1)"), None),
            (None, Some("s.t=a,b,c,d,e")),
            (Some("s.t day(at)"), None),
        ] {
            assert!(
                MirrorLayout::parse(partitioning, clustering).is_err(),
                "{partitioning:?} {clustering:?}"
            );
        }
        let layout = MirrorLayout::parse(Some("s.a=day(n); s.b=day(missing)"), Some("s.c=price"))
            .expect("parses");
        for table in ["s.a", "s.b", "s.c"] {
            let error = layout.of(table, &shape()).expect_err(table).to_string();
            assert!(
                error.starts_with("configuration: mirror layout: "),
                "{error}"
            );
        }
    }
}
