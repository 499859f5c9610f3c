use super::*;
use pg2bq_core::wire::{ColumnSpec, TableId};
use pg2bq_source::catalog::{SourceColumn, TableKind};

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

fn table_with(schema: &str, name: &str, columns: &[&str]) -> SourceTable {
    SourceTable {
        id: TableId {
            schema: schema.into(),
            table: name.into(),
        },
        oid: 1,
        kind: TableKind::Table,
        replica_identity: ReplicaIdentity::Default,
        primary_key: vec![columns[0].to_owned()],
        columns: columns
            .iter()
            .map(|c| SourceColumn {
                spec: ColumnSpec {
                    name: (*c).to_owned(),
                    pg_type: "int4".into(),
                    type_modifier: -1,
                    key: *c == columns[0],
                },
                declared_type: "integer".into(),
                nullable: true,
                toastable: true,
                type_oid: 23,
                attnum: 1,
            })
            .collect(),
        generated: vec![],
        excluded: vec![],
        identity_columns: vec![],
        row_filter: None,
        rows_estimated: 0,
        selectable: true,
    }
}

#[test]
fn colliding_bigquery_names_fail_with_the_rename_that_separates_them() {
    let tables = [
        table_with("a_b", "c", &["id", "Name", "name"]),
        table_with("a", "b_c", &["id"]),
    ];
    let single = DatasetLayout::from_settings(Some("mirror"), "").unwrap();
    let checks = name_checks(&tables, &single, "pg2bq");
    let text = render(&checks);
    let failed: Vec<&Check> = checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .collect();
    assert_eq!(failed.len(), 2, "{text}");
    assert!(
        text.contains(
            "FAIL  a_b.c  BigQuery name collision: a.b_c and a_b.c are both written to mirror.a_b_c"
        ),
        "{text}"
    );
    assert!(
        text.contains("fix: give a_b.c another BigQuery table: add a_b.c=a_b_c_2 to the rename map (PG2BQ_BQ_RENAME"),
        "{text}"
    );
    assert!(
        text.contains("columns Name and name of a_b.c") && text.contains("a_b.c.name=name_2"),
        "{text}"
    );
    // A dataset per schema and the suggested column rename leave nothing to fix; an entry
    // that names nothing selected is a warning.
    let fixed = DatasetLayout::from_settings(None, "")
        .unwrap()
        .with_renames(
            pg2bq_core::bq_naming::RenameMap::parse("a_b.c.name=name_2, a_b.x=y").unwrap(),
        );
    let checks = name_checks(&tables, &fixed, "pg2bq");
    let text = render(&checks);
    assert!(!checks.iter().any(|c| c.outcome == Outcome::Fail), "{text}");
    assert!(
        text.contains(
            "PASS  BigQuery names  2 tables and 4 columns, each on its own BigQuery name"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "WARN  BigQuery names  the rename a_b.x=y is not used: a_b.x is not a selected table"
        ),
        "{text}"
    );
}

#[test]
fn the_freshness_probe_counts_among_the_tables() {
    let tables = [table_with("pg2bq_freshness", "probe", &["id"])];
    let single = DatasetLayout::from_settings(Some("mirror"), "").unwrap();
    let checks = name_checks(&tables, &single, "pg2bq");
    assert!(
        checks.iter().any(|c| c.outcome == Outcome::Fail
            && c.detail
                .contains("pg2bq.freshness_probe and pg2bq_freshness.probe")),
        "{}",
        render(&checks)
    );
}

#[test]
fn tables_without_keys_or_identity_are_flagged() {
    let t = |identity, key: bool| SourceTable {
        id: TableId {
            schema: "s".into(),
            table: "t".into(),
        },
        oid: 1,
        kind: TableKind::Table,
        replica_identity: identity,
        primary_key: if key { vec!["id".into()] } else { vec![] },
        columns: vec![SourceColumn {
            spec: ColumnSpec {
                name: "span".into(),
                pg_type: "interval".into(),
                type_modifier: -1,
                key: false,
            },
            declared_type: "interval".into(),
            nullable: true,
            toastable: true,
            type_oid: 1186,
            attnum: 1,
        }],
        generated: vec![],
        excluded: vec![],
        identity_columns: vec![],
        row_filter: None,
        rows_estimated: 0,
        selectable: true,
    };
    let native = native_strategy_checks(&[
        t(ReplicaIdentity::Default, true),
        t(ReplicaIdentity::Full, true),
        t(ReplicaIdentity::Default, false),
    ]);
    assert_eq!(
        native.len(),
        1,
        "only the keyed table under the default identity"
    );
    assert_eq!(native[0].outcome, Outcome::Fail);
    assert!(native[0].detail.contains("span"), "{}", native[0].detail);
    assert!(
        native[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("REPLICA IDENTITY FULL")
    );
    let checks = table_checks(&[
        t(ReplicaIdentity::Nothing, true),
        t(ReplicaIdentity::Full, false),
    ]);
    assert!(
        checks.iter().all(|c| c.outcome != Outcome::Fail),
        "unpublishable tables are skipped, not failed: {checks:?}"
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
