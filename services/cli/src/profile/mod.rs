//! `pg2bq profile test source|target`: connectivity and prerequisites, one line per check, with
//! the fix for each failure.

use crate::error::{CliError, Result};
use pg2bq_core::bq_naming::DatasetLayout;
use pg2bq_core::bq_naming::collisions::{SourceNames, unused_renames};
use pg2bq_core::bq_types::{BqType, bq_type_for};
use pg2bq_source::catalog::{ReplicaIdentity, SourceTable, Unpublishable, name_problems};
use serde::Serialize;
use tokio_postgres::Client;

mod reads;
mod versions;
pub use reads::{money_check, money_checks, row_security_checks};
pub use versions::{FAILOVER, failover_check, generated_checks, standby_check};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Fine.
    Pass,
    /// Works, with a caveat.
    Warn,
    /// Capture cannot work until it is fixed.
    Fail,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// How to fix it (for warnings and failures).
    pub fix: Option<String>,
}

fn check(name: &str, outcome: Outcome, detail: String, fix: Option<String>) -> Check {
    Check {
        name: name.to_owned(),
        outcome,
        detail,
        fix,
    }
}

/// What the source server reports about itself and the user.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    /// `server_version_num`.
    pub version_num: i32,
    /// `wal_level`.
    pub wal_level: String,
    /// The user.
    pub user: String,
    /// REPLICATION attribute or superuser.
    pub can_replicate: bool,
    /// CREATE on the database (for the state schema).
    pub can_create_schema: bool,
    /// `max_replication_slots` and slots in use.
    pub slots: (i64, i64),
    /// `max_wal_senders` and senders in use.
    pub senders: (i64, i64),
    /// `max_slot_wal_keep_size` in MB (-1: unlimited).
    pub max_slot_wal_keep_size_mb: i64,
}

/// Evaluates the server's facts.
pub fn server_checks(f: &ServerFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(if f.version_num >= 140_000 {
        check(
            "PostgreSQL version",
            Outcome::Pass,
            format!("{}", f.version_num),
            None,
        )
    } else {
        check(
            "PostgreSQL version",
            Outcome::Fail,
            format!("{} is older than 14", f.version_num),
            Some("upgrade to PostgreSQL 14 or later".into()),
        )
    });
    checks.push(if f.wal_level == "logical" {
        check("wal_level", Outcome::Pass, "logical".into(), None)
    } else {
        check(
            "wal_level",
            Outcome::Fail,
            format!("{} (logical decoding needs logical)", f.wal_level),
            Some("ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (Cloud SQL: set the flag cloudsql.logical_decoding=on)".into()),
        )
    });
    checks.push(if f.can_replicate {
        check("REPLICATION attribute", Outcome::Pass, format!("{} may replicate", f.user), None)
    } else {
        check(
            "REPLICATION attribute",
            Outcome::Fail,
            format!("{} has no REPLICATION attribute", f.user),
            Some(format!("ALTER ROLE \"{}\" WITH REPLICATION; (as a superuser, or cloudsqlsuperuser on Cloud SQL)", f.user)),
        )
    });
    checks.push(if f.can_create_schema {
        check(
            "state schema",
            Outcome::Pass,
            "the user may create pg2bq's state schema".into(),
            None,
        )
    } else {
        check(
            "state schema",
            Outcome::Fail,
            format!("{} may not create schemas in this database", f.user),
            Some(format!("GRANT CREATE ON DATABASE <db> TO \"{}\";", f.user)),
        )
    });
    let free_slots = f.slots.0 - f.slots.1;
    checks.push(if free_slots >= 2 {
        check("replication slots", Outcome::Pass, format!("{free_slots} of {} free", f.slots.0), None)
    } else {
        check("replication slots", Outcome::Fail, format!("{free_slots} of {} free; capture needs 2 (its slot and a temporary one for backfills)", f.slots.0), Some("raise max_replication_slots (restart), or drop unused slots".into()))
    });
    let free_senders = f.senders.0 - f.senders.1;
    checks.push(if free_senders >= 2 {
        check(
            "WAL senders",
            Outcome::Pass,
            format!("{free_senders} of {} free", f.senders.0),
            None,
        )
    } else {
        check(
            "WAL senders",
            Outcome::Fail,
            format!("{free_senders} of {} free; capture needs 2", f.senders.0),
            Some("raise max_wal_senders (restart)".into()),
        )
    });
    checks.push(if f.max_slot_wal_keep_size_mb < 0 {
        check(
            "max_slot_wal_keep_size",
            Outcome::Warn,
            "unlimited: a stopped capture lets its slot hold WAL until the disk fills".into(),
            Some("set max_slot_wal_keep_size (e.g. 10GB) so that a forgotten slot is invalidated instead".into()),
        )
    } else {
        check("max_slot_wal_keep_size", Outcome::Pass, format!("{} MB", f.max_slot_wal_keep_size_mb), None)
    });
    checks
}

/// Columns whose type becomes STRING though it is not text (name, PostgreSQL type).
fn text_only_columns(table: &SourceTable) -> Vec<(String, String)> {
    table
        .columns
        .iter()
        .filter(|c| is_text_only(&c.spec.pg_type))
        .map(|c| (c.spec.name.clone(), c.spec.pg_type.clone()))
        .collect()
}

/// The selected tables pg2bq leaves out of the publication (their UPDATE and DELETE would fail
/// once published), each with why and the fix: a warning, since the rest can stream.
pub fn skipped_checks(skipped: &[Unpublishable]) -> Vec<Check> {
    skipped
        .iter()
        .map(|s| {
            check(
                &s.table.to_string(),
                Outcome::Warn,
                format!("skipped: {}", s.reason),
                Some(s.fix.clone()),
            )
        })
        .collect()
}

/// Evaluates the selected tables, as the catalogue reader describes them.
pub fn table_checks(tables: &[SourceTable]) -> Vec<Check> {
    if tables.is_empty() {
        return vec![check(
            "tables",
            Outcome::Fail,
            "no table matches the include patterns".into(),
            Some("check PG2BQ_INCLUDE / PG2BQ_EXCLUDE".into()),
        )];
    }
    let mut checks = vec![check(
        "tables",
        Outcome::Pass,
        format!("{} selected", tables.len()),
        None,
    )];
    for t in tables {
        let name = t.id.to_string();
        let has_primary_key = !t.primary_key.is_empty();
        if !t.selectable {
            checks.push(check(
                &name,
                Outcome::Fail,
                "the user may not SELECT it (backfill needs to)".into(),
                Some(format!("GRANT SELECT ON {name} TO <user>;")),
            ));
        }
        // Tables whose UPDATE and DELETE would fail once published are skipped (see
        // `skipped_checks`); a table without a key under REPLICA IDENTITY FULL is replicated
        // as a log.
        if !has_primary_key && t.replica_identity == ReplicaIdentity::Full {
            checks.push(check(
                &name,
                Outcome::Warn,
                "no primary key: written append-only (every change a row), not mirrored".into(),
                Some(format!("add a primary key to {name} to mirror it")),
            ));
        }
        let text_only = text_only_columns(t);
        if !text_only.is_empty() {
            let list: Vec<String> = text_only
                .iter()
                .map(|(c, ty)| format!("{c} ({ty})"))
                .collect();
            checks.push(check(
                &name,
                Outcome::Warn,
                format!("kept as STRING (PostgreSQL text): {}", list.join(", ")),
                None,
            ));
        }
    }
    checks
}

/// Evaluates the BigQuery names of the selected tables under `layout`: a FAIL per collision (see
/// [`pg2bq_source::catalog::name_problems`]) with its rename, a WARN per entry of the rename
/// map that names no selected table or column.
pub fn name_checks(
    tables: &[SourceTable],
    layout: &DatasetLayout,
    state_schema: &str,
) -> Vec<Check> {
    let problems = name_problems(layout, tables, state_schema);
    let mut checks: Vec<Check> = problems
        .iter()
        .map(|p| {
            check(
                &p.rename().table.to_string(),
                Outcome::Fail,
                p.detail(),
                Some(p.fix()),
            )
        })
        .collect();
    if problems.is_empty() {
        let columns: usize = tables.iter().map(|t| t.columns.len()).sum();
        checks.push(check(
            "BigQuery names",
            Outcome::Pass,
            format!(
                "{} tables and {columns} columns, each on its own BigQuery name",
                tables.len()
            ),
            None,
        ));
    }
    let names: Vec<SourceNames> = tables.iter().map(SourceTable::source_names).collect();
    for entry in unused_renames(layout, &names) {
        let selected = names.iter().any(|t| t.id == entry.table);
        let detail = match (&entry.column, selected) {
            (Some(column), true) => format!(
                "the rename {entry} is not used: {} has no replicated column {column}",
                entry.table
            ),
            _ => format!(
                "the rename {entry} is not used: {} is not a selected table",
                entry.table
            ),
        };
        checks.push(check(
            "BigQuery names",
            Outcome::Warn,
            detail,
            Some("check the entry's names: they are matched exactly, case included".into()),
        ));
    }
    checks
}

/// With BigQuery's native CDC (`PG2BQ_MERGE_STRATEGY=native`) an UPSERT replaces the whole
/// row, so an UPDATE that leaves a TOASTed value unchanged (PostgreSQL does not send it unless
/// the replica identity is FULL) cannot be applied: such tables fail, with the fix.
pub fn native_strategy_checks(tables: &[SourceTable]) -> Vec<Check> {
    tables
        .iter()
        .filter(|t| t.replica_identity != ReplicaIdentity::Full && !t.primary_key.is_empty())
        .filter_map(|t| {
            let toastable: Vec<&str> = t
                .columns
                .iter()
                .filter(|c| c.toastable && !c.spec.key)
                .map(|c| c.spec.name.as_str())
                .collect();
            (!toastable.is_empty()).then(|| {
                let name = t.id.to_string();
                check(
                    &name,
                    Outcome::Fail,
                    format!(
                        "native CDC replaces whole rows, and an UPDATE that leaves a TOASTed value \
                         of {} unchanged does not carry it",
                        toastable.join(", ")
                    ),
                    Some(format!(
                        "ALTER TABLE {} REPLICA IDENTITY FULL; or use PG2BQ_MERGE_STRATEGY=staged, \
                         which keeps unchanged values",
                        t.quoted_name()
                    )),
                )
            })
        })
        .collect()
}

/// Types that become STRING although they are not text in PostgreSQL.
pub fn is_text_only(pg_type: &str) -> bool {
    const TEXT_TYPES: [&str; 6] = ["text", "varchar", "bpchar", "char", "name", "enum"];
    bq_type_for(pg_type, -1) == BqType::String
        && !TEXT_TYPES.contains(&pg_type)
        && pg_type != "uuid"
        && pg_type != "numeric"
}

/// Reads the server's facts.
pub async fn server_facts(sql: &Client) -> Result<ServerFacts> {
    let row = sql
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('wal_level'), current_user::text, \
                    (SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), \
                    has_database_privilege(current_database(), 'CREATE'), \
                    current_setting('max_replication_slots')::bigint, (SELECT count(*) FROM pg_catalog.pg_replication_slots), \
                    current_setting('max_wal_senders')::bigint, (SELECT count(*) FROM pg_catalog.pg_stat_replication), \
                    COALESCE(NULLIF(current_setting('max_slot_wal_keep_size'), '-1'), '-1MB')",
            &[],
        )
        .await
        .map_err(CliError::postgres("reading the server settings"))?;
    let keep: String = row.get(9);
    Ok(ServerFacts {
        version_num: row.get(0),
        wal_level: row.get(1),
        user: row.get(2),
        can_replicate: row.get(3),
        can_create_schema: row.get(4),
        slots: (row.get(5), row.get(6)),
        senders: (row.get(7), row.get(8)),
        max_slot_wal_keep_size_mb: parse_megabytes(&keep),
    })
}

fn parse_megabytes(setting: &str) -> i64 {
    let digits: String = setting
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    let value: i64 = digits.parse().unwrap_or(-1);
    match setting.trim_start_matches(&digits[..]) {
        "GB" => value * 1024,
        "TB" => value * 1024 * 1024,
        "kB" => value / 1024,
        _ => value,
    }
}

/// The checks as aligned text lines.
pub fn render(checks: &[Check]) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    for c in checks {
        let mark = match c.outcome {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
        };
        out.push_str(&format!("{mark}  {:<width$}  {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:<width$}  fix: {fix}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests;
