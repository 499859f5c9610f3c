//! `pg2bq profile test source|target`: connectivity and prerequisites, one line per check, with
//! the fix for each failure.

use crate::error::{CliError, Result};
use pg2bq_core::bq_types::{BqType, bq_type_for};
use pg2bq_core::pg_types::builtin_type_name;
use pg2bq_core::selection::TableSelection;
use pg2bq_core::wire::TableId;
use serde::Serialize;
use tokio_postgres::Client;

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

/// What the catalogue says of one selected table.
#[derive(Debug, Clone)]
pub struct TableFacts {
    /// The table.
    pub table: TableId,
    /// The user may SELECT it.
    pub selectable: bool,
    /// It has a primary key.
    pub has_primary_key: bool,
    /// `relreplident`: d, n, f or i.
    pub replica_identity: char,
    /// Columns whose type becomes STRING though it is not text (name, PostgreSQL type).
    pub text_only_columns: Vec<(String, String)>,
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

/// Evaluates the selected tables.
pub fn table_checks(tables: &[TableFacts]) -> Vec<Check> {
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
        let name = t.table.to_string();
        if !t.selectable {
            checks.push(check(
                &name,
                Outcome::Fail,
                "the user may not SELECT it (backfill needs to)".into(),
                Some(format!("GRANT SELECT ON {name} TO <user>;")),
            ));
        }
        if t.replica_identity == 'n' {
            checks.push(check(
                &name,
                Outcome::Fail,
                "REPLICA IDENTITY NOTHING: its UPDATEs and DELETEs fail once it is published"
                    .into(),
                Some(format!(
                    "ALTER TABLE {name} REPLICA IDENTITY DEFAULT; (with a primary key) or FULL"
                )),
            ));
        } else if !t.has_primary_key {
            let fix = if t.replica_identity == 'f' {
                format!("add a primary key to {name} to mirror it")
            } else {
                format!(
                    "add a primary key to {name}; without one, also ALTER TABLE {name} REPLICA IDENTITY FULL so that UPDATEs and DELETEs can be published"
                )
            };
            checks.push(check(
                &name,
                Outcome::Warn,
                "no primary key: written append-only (every change a row), not mirrored".into(),
                Some(fix),
            ));
        }
        if !t.text_only_columns.is_empty() {
            let list: Vec<String> = t
                .text_only_columns
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

/// Reads the facts of every table the selection picks.
pub async fn table_facts(sql: &Client, selection: &TableSelection) -> Result<Vec<TableFacts>> {
    let rows = sql
        .query(
            "SELECT n.nspname::text, c.relname::text, has_table_privilege(c.oid, 'SELECT'), \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), \
                    c.relreplident::text, \
                    COALESCE((SELECT array_agg(a.attname::text || ':' || a.atttypid::text ORDER BY a.attnum) \
                              FROM pg_catalog.pg_attribute a \
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}') \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(CliError::postgres("listing tables"))?;
    let mut tables = Vec::new();
    for row in rows {
        let table = TableId {
            schema: row.get(0),
            table: row.get(1),
        };
        if !selection.matches(&table) {
            continue;
        }
        let columns: Vec<String> = row.get(5);
        let identity: String = row.get(4);
        tables.push(TableFacts {
            table,
            selectable: row.get(2),
            has_primary_key: row.get(3),
            replica_identity: identity.chars().next().unwrap_or('d'),
            text_only_columns: columns
                .iter()
                .filter_map(|c| c.rsplit_once(':'))
                .filter_map(|(c, oid)| Some((c, builtin_type_name(oid.parse().ok()?)?)))
                .filter(|(_, ty)| is_text_only(ty))
                .map(|(c, ty)| (c.to_owned(), ty.to_owned()))
                .collect(),
        });
    }
    Ok(tables)
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
mod tests {
    use super::*;

    fn healthy() -> ServerFacts {
        ServerFacts {
            version_num: 150_018,
            wal_level: "logical".into(),
            user: "replicator".into(),
            can_replicate: true,
            can_create_schema: true,
            slots: (10, 2),
            senders: (10, 1),
            max_slot_wal_keep_size_mb: 4096,
        }
    }

    #[test]
    fn a_healthy_server_passes_and_each_gap_fails_with_its_fix() {
        assert!(
            server_checks(&healthy())
                .iter()
                .all(|c| c.outcome == Outcome::Pass)
        );
        let mut f = healthy();
        f.wal_level = "replica".into();
        f.can_replicate = false;
        f.slots = (2, 1);
        f.max_slot_wal_keep_size_mb = -1;
        let checks = server_checks(&f);
        let find = |name: &str| checks.iter().find(|c| c.name == name).unwrap();
        assert_eq!(find("wal_level").outcome, Outcome::Fail);
        assert!(
            find("wal_level")
                .fix
                .as_deref()
                .unwrap()
                .contains("cloudsql.logical_decoding=on")
        );
        assert!(
            find("REPLICATION attribute")
                .fix
                .as_deref()
                .unwrap()
                .contains("ALTER ROLE \"replicator\" WITH REPLICATION")
        );
        assert_eq!(find("replication slots").outcome, Outcome::Fail);
        assert_eq!(find("max_slot_wal_keep_size").outcome, Outcome::Warn);
        assert!(render(&checks).contains("FAIL  wal_level"));
    }

    #[test]
    fn tables_without_keys_or_identity_are_flagged() {
        let t = |identity, key| TableFacts {
            table: TableId {
                schema: "s".into(),
                table: "t".into(),
            },
            selectable: true,
            has_primary_key: key,
            replica_identity: identity,
            text_only_columns: vec![("span".into(), "interval".into())],
        };
        let checks = table_checks(&[t('n', true), t('d', false)]);
        assert!(
            checks.iter().any(
                |c| c.outcome == Outcome::Fail && c.detail.contains("REPLICA IDENTITY NOTHING")
            )
        );
        assert!(
            checks
                .iter()
                .any(|c| c.outcome == Outcome::Warn && c.detail.contains("append-only"))
        );
        assert!(checks.iter().any(|c| c.detail.contains("span (interval)")));
        assert!(
            is_text_only("interval")
                && !is_text_only("text")
                && !is_text_only("uuid")
                && !is_text_only("int4")
        );
        assert_eq!(parse_megabytes("4GB"), 4096);
        assert_eq!(parse_megabytes("-1MB"), -1);
    }
}
