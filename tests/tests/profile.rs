//! `pg2bq profile test` against the real server. Needs the local stack.

use pg2bq_e2e::scratch_cluster::{ClusterOptions, ScratchCluster};
use pg2bq_e2e::stack::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_test_fails_clearly_for_a_user_without_replication() {
    let stack = Stack::from_env();
    let admin = stack.admin().await;
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'e2e_norepl') THEN CREATE ROLE e2e_norepl LOGIN; END IF;
             END $$; ALTER ROLE e2e_norepl NOREPLICATION;
             CREATE TABLE IF NOT EXISTS public.e2e_profile_probe (id int PRIMARY KEY);
             GRANT SELECT ON public.e2e_profile_probe TO e2e_norepl;",
        )
        .await
        .expect("role");
    let run = |user: &str| {
        stack
            .pg2bq("postgres")
            .args([
                "profile",
                "test",
                "source",
                "--include",
                "public.e2e_profile_probe",
            ])
            .env("PG2BQ_PG_USER", user)
            .output()
            .expect("pg2bq profile test")
    };
    let output = run("e2e_norepl");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed check exits 1:\n{text}"
    );
    assert!(text.contains("FAIL  REPLICATION attribute"), "{text}");
    assert!(
        text.contains("fix: ALTER ROLE \"e2e_norepl\" WITH REPLICATION"),
        "{text}"
    );
    assert!(text.contains("PASS  wal_level"), "{text}");

    let output = run(&stack.pg_user);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "every check passes for the stack's superuser:\n{text}"
    );
    assert!(
        text.contains("PASS  REPLICATION attribute") && text.contains("PASS  tables"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_shows_columns_keys_and_their_bigquery_types() {
    let stack = Stack::from_env();
    let admin = stack.admin().await;
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS public.e2e_discover; \
             CREATE TABLE public.e2e_discover (a int, b text, amount numeric(40, 12), tags int[], at timestamptz NOT NULL, PRIMARY KEY (a, b));",
        )
        .await
        .expect("table");
    let output = stack
        .pg2bq("postgres")
        .args(["discover", "--json", "--include", "public.e2e_discover"])
        .output()
        .expect("pg2bq discover");
    assert!(output.status.success());
    let tables: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let table = &tables[0];
    assert_eq!(table["table"], "public.e2e_discover");
    assert_eq!(table["primary_key"], serde_json::json!(["a", "b"]));
    let types: Vec<(&str, &str)> = table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["pg_type"].as_str().unwrap(),
                c["bigquery_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("integer", "INT64"),
            ("text", "STRING"),
            ("numeric(40,12)", "BIGNUMERIC"),
            ("integer[]", "JSON"),
            ("timestamp with time zone", "TIMESTAMP")
        ]
    );
    assert_eq!(table["columns"][4]["nullable"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_test_fails_clearly_on_a_server_without_logical_wal_level() {
    let cluster = ScratchCluster::start(&ClusterOptions {
        wal_level: "replica",
        ..ClusterOptions::default()
    });
    cluster
        .admin()
        .await
        .batch_execute("CREATE TABLE public.probe (id int PRIMARY KEY)")
        .await
        .expect("table");
    let output = cluster
        .stack()
        .pg2bq("postgres")
        .args(["profile", "test", "source", "--include", "public.probe"])
        .output()
        .expect("pg2bq profile test");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed check exits 1:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("FAIL  wal_level")
            && text.contains("replica (logical decoding needs logical)"),
        "{text}"
    );
    assert!(
        text.contains("fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"),
        "{text}"
    );
    assert!(
        text.contains("Cloud SQL: set the flag cloudsql.logical_decoding=on"),
        "{text}"
    );
    // Everything else about this server is fine: only wal_level fails.
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("PASS  encryption")
            && l.ends_with("not encrypted: a local connection to 127.0.0.1")),
        "{text}"
    );

    // This server has no TLS: sslmode=require fails the connection check, with the fix.
    let output = cluster
        .stack()
        .pg2bq("postgres")
        .args(["profile", "test", "source"])
        .env("PG2BQ_PG_SSLMODE", "require")
        .output()
        .expect("pg2bq profile test");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  connection") && text.contains("server does not support TLS"),
        "{text}"
    );
    assert!(
        text.contains("fix: the server does not support SSL: set PG2BQ_PG_SSLMODE=disable"),
        "{text}"
    );
}
