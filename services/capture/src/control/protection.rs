//! The protection of columns (`PG2BQ_PROTECT` and its key) each table was published with is
//! recorded in the stream's state. Capture refuses to start when a table already replicated
//! would now be protected otherwise (other columns or methods, or another key for its hashed
//! columns): BigQuery would hold clear and protected values, or two hashes, side by side. A
//! table new to the stream is recorded as it is. `pg2bq backfill <table> --recreate` records a
//! table's new protection, its BigQuery tables made again by the copy.

use crate::error::{CaptureError, Result};
use pg2bq_core::protect::Protection;
use pg2bq_core::wire::{ColumnSpec, TableId};
use pg2bq_source::catalog::SourceTable;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::stream::RecordedProtection;
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// The protection of `tables` as `protection` describes it.
fn current(protection: &Protection, tables: &[(TableId, Vec<ColumnSpec>)]) -> RecordedProtection {
    RecordedProtection {
        tables: tables
            .iter()
            .map(|(id, columns)| (id.to_string(), protection.describe_table(id, columns)))
            .collect(),
    }
}

/// The tables whose protection differs between `recorded` and `current` (tables in both).
fn changed(recorded: &RecordedProtection, current: &RecordedProtection) -> Vec<String> {
    let shown = |p: &str| {
        if p.is_empty() {
            "nothing".to_owned()
        } else {
            format!("`{p}`")
        }
    };
    current
        .tables
        .iter()
        .filter_map(|(table, now)| {
            let before = recorded.tables.get(table)?;
            (before != now)
                .then(|| format!("{table}: {} before, {} now", shown(before), shown(now)))
        })
        .collect()
}

/// Checks the publication's `tables` against `protection` (see [`Protection::check`]) and
/// against the protection recorded for them, and records the protection of the tables new to
/// the stream.
pub async fn check(
    client: &Client,
    state: &StateStore,
    protection: &Protection,
    tables: &[SourceTable],
) -> Result<()> {
    let tables: Vec<(TableId, Vec<ColumnSpec>)> = tables
        .iter()
        .map(|t| (t.id.clone(), t.column_specs()))
        .collect();
    for (id, columns) in &tables {
        protection.check(id, columns)?;
    }
    let current = current(protection, &tables);
    let recorded = match state.recorded_protection(client).await? {
        Some((Some(recorded), _)) => recorded,
        // A stream that streamed before protection was recorded protected nothing.
        Some((None, true)) => RecordedProtection {
            tables: current
                .tables
                .keys()
                .map(|t| (t.clone(), String::new()))
                .collect::<BTreeMap<_, _>>(),
        },
        Some((None, false)) | None => RecordedProtection::default(),
    };
    let changed = changed(&recorded, &current);
    if !changed.is_empty() {
        return Err(CaptureError::Config(format!(
            "PG2BQ_PROTECT or its key protects tables otherwise than when they were replicated \
             ({}); BigQuery would hold differently protected values side by side. Put \
             PG2BQ_PROTECT and PG2BQ_PROTECT_KEY back as they were; or, to change protection, \
             run `pg2bq backfill <schema.table> --recreate` with the new settings for each of \
             these tables (it records the new protection, and the table is copied into new \
             BigQuery tables), then start capture",
            changed.join("; ")
        )));
    }
    state.record_protection(client, &current).await?;
    Ok(())
}

/// Records the protection `table` is copied with (a table that joined the stream).
pub async fn record_table(
    client: &Client,
    state: &StateStore,
    protection: &Protection,
    table: &TableId,
    columns: &[ColumnSpec],
) -> Result<()> {
    let current = current(protection, &[(table.clone(), columns.to_vec())]);
    state.record_protection(client, &current).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(tables: &[(&str, &str)]) -> RecordedProtection {
        RecordedProtection {
            tables: tables
                .iter()
                .map(|(t, p)| (t.to_string(), p.to_string()))
                .collect(),
        }
    }

    #[test]
    fn only_tables_replicated_before_and_protected_otherwise_are_changes() {
        let before = recorded(&[
            ("a.t", "x:hmac (key check 1)"),
            ("a.u", ""),
            ("a.v", "m:mask(*)"),
        ]);
        // New tables and tables gone are no change.
        let now = recorded(&[
            ("a.t", "x:hmac (key check 1)"),
            ("a.u", ""),
            ("a.new", "y:hmac"),
        ]);
        assert!(changed(&before, &now).is_empty());
        // A table that gains protection, or whose hashed columns get another key.
        let now = recorded(&[
            ("a.t", "x:hmac (key check 2)"),
            ("a.u", "z:mask(****)"),
            ("a.v", "m:mask(*)"),
        ]);
        let found = changed(&before, &now);
        assert_eq!(
            found,
            [
                "a.t: `x:hmac (key check 1)` before, `x:hmac (key check 2)` now",
                "a.u: nothing before, `z:mask(****)` now"
            ]
        );
    }

    #[test]
    fn tables_are_recorded_as_described() {
        use pg2bq_core::config::Secret;
        use pg2bq_core::protect::ProtectSetting;
        let protection = Protection::new(
            ProtectSetting::parse("a.t=x:hmac; a.u=y:mask").unwrap(),
            Some(&Secret::from("a key of sixteen bytes".to_owned())),
        )
        .unwrap();
        let column = |name: &str| ColumnSpec {
            name: name.into(),
            pg_type: "text".into(),
            type_modifier: -1,
            key: false,
        };
        let id = |t: &str| TableId {
            schema: "a".into(),
            table: t.into(),
        };
        let described = current(
            &protection,
            &[(id("t"), vec![column("x")]), (id("u"), vec![column("y")])],
        );
        let check = protection.key_check().unwrap();
        assert_eq!(
            described.tables["a.t"],
            format!("x:hmac (key check {check})")
        );
        assert_eq!(described.tables["a.u"], "y:mask(****)");
    }
}
