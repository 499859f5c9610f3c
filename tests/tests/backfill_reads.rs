//! What a backfill reads: every row or nothing (row-level security never hides rows from it: the
//! table is refused with the fix until the user may read them all), and each table from a
//! snapshot of its own that is released when the table is done. Needs the local stack.

use pg2bq_e2e::backfill_probe::session;
use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const CAPTURE_ROLE: &str = "e2e_rls_capture";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_refuses_the_table_with_the_fix_instead_of_hiding_rows() {
    let stack = pg2bq_e2e::stack::Stack::from_env();
    // Capture runs as an ordinary role: it owns the tables (so that it may publish them), but
    // the guarded table forces its policy on its owner too, and the role has no BYPASSRLS.
    stack
        .admin()
        .await
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{CAPTURE_ROLE}') THEN
                 CREATE ROLE {CAPTURE_ROLE} LOGIN REPLICATION;
               END IF;
             END $$;
             ALTER ROLE {CAPTURE_ROLE} LOGIN REPLICATION NOSUPERUSER NOBYPASSRLS;"
        ))
        .await
        .expect("the capture role");
    let schema = format!(
        "GRANT CREATE ON DATABASE e2e_rowsec TO {CAPTURE_ROLE};
         CREATE SCHEMA sec AUTHORIZATION {CAPTURE_ROLE};
         CREATE TABLE sec.open (id int PRIMARY KEY, v text);
         INSERT INTO sec.open SELECT g, 'open ' || g FROM generate_series(1, 50) g;
         CREATE TABLE sec.guarded (id int PRIMARY KEY, tenant text NOT NULL, v text);
         INSERT INTO sec.guarded SELECT g, CASE WHEN g % 3 = 0 THEN 'alice' ELSE 'bob' END, 'row ' || g
           FROM generate_series(1, 300) g;
         ALTER TABLE sec.guarded ENABLE ROW LEVEL SECURITY;
         ALTER TABLE sec.guarded FORCE ROW LEVEL SECURITY;
         CREATE POLICY alice_only ON sec.guarded USING (tenant = 'alice');
         ALTER TABLE sec.open OWNER TO {CAPTURE_ROLE};
         ALTER TABLE sec.guarded OWNER TO {CAPTURE_ROLE};"
    );
    let options = Options {
        capture_env: env(&[
            ("PG2BQ_PG_USER", CAPTURE_ROLE),
            ("PG2BQ_PUBLICATION_REFRESH_SECS", "1"),
        ]),
        wait_for_backfill: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("rowsec", &["sec"], &schema, options).await;
    let state = pipeline.state();
    // The open table is copied; the guarded one stops loudly, with the fix, and stays so.
    let deadline = Instant::now() + Duration::from_secs(90);
    let refused = loop {
        let progress = state
            .progress(&pipeline.sql, None)
            .await
            .unwrap_or_default();
        let open_done = progress
            .iter()
            .any(|p| p.table.to_string() == "sec.open" && p.finished);
        let guarded = progress
            .iter()
            .find(|p| p.table.to_string() == "sec.guarded" && p.last_error.is_some());
        if let (true, Some(guarded)) = (open_done, guarded) {
            break guarded.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no refusal: {progress:?}\n{}",
            pipeline.capture().log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = refused.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("row-level security would hide rows of it from e2e_rls_capture")
            && error.contains("ALTER ROLE \"e2e_rls_capture\" BYPASSRLS"),
        "{error}"
    );
    assert!(!refused.finished && refused.copied_rows == 0, "{refused:?}");
    // Changes still stream, and the refusal is repeated, loudly, at each round.
    pipeline
        .sql
        .batch_execute("INSERT INTO sec.guarded VALUES (301, 'bob', 'while refused'); UPDATE sec.open SET v = 'changed' WHERE id = 1")
        .await
        .expect("changes");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = pipeline.capture().log();
    assert!(
        log.matches("backfill of a table refused until fixed")
            .count()
            >= 2,
        "every round says it:\n{}",
        pipeline.capture().log_tail(20)
    );
    let status = pg2bq(&pipeline, &["backfill"], &[]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && text.contains("error: backfill of sec.guarded"),
        "{}",
        describe(&status)
    );
    // `profile test source` says so before a stream is even created.
    let profile = pg2bq(
        &pipeline,
        &["profile", "test", "source"],
        &[("PG2BQ_PG_USER", CAPTURE_ROLE), ("PG2BQ_INCLUDE", "sec")],
    );
    let text = String::from_utf8_lossy(&profile.stdout);
    assert_eq!(profile.status.code(), Some(1), "{}", describe(&profile));
    assert!(
        text.contains("FAIL  sec.guarded")
            && text.contains("row-level security would hide rows from e2e_rls_capture")
            && text.contains("fix: ALTER ROLE \"e2e_rls_capture\" BYPASSRLS;"),
        "{text}"
    );
    assert!(!text.contains("FAIL  sec.open"), "{text}");

    // The fix: the next round copies every row.
    stack
        .admin()
        .await
        .batch_execute(&format!("ALTER ROLE {CAPTURE_ROLE} BYPASSRLS"))
        .await
        .expect("BYPASSRLS");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(120)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("sec.guarded".to_owned(), 301), ("sec.open".to_owned(), 50)]
    );
    let guarded = state
        .progress(&pipeline.sql, None)
        .await
        .expect("progress")
        .into_iter()
        .find(|p| p.table.to_string() == "sec.guarded")
        .expect("a plan");
    assert!(
        guarded.finished && guarded.last_error.is_none(),
        "{guarded:?}"
    );
    stack
        .admin()
        .await
        .batch_execute(&format!("ALTER ROLE {CAPTURE_ROLE} NOBYPASSRLS"))
        .await
        .expect("reset the role");
}

/// What the sampler saw.
#[derive(Debug, Default)]
struct Seen {
    /// Most temporary slots of the database at once.
    most_temporary_slots: usize,
    /// Every temporary slot's name.
    temporary_slots: BTreeSet<String>,
    /// Per table, the `backend_xmin` of the connections copying it.
    xmins: BTreeMap<String, BTreeSet<i64>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_table_is_copied_from_a_snapshot_of_its_own_released_when_it_is_done() {
    let schema = "
CREATE SCHEMA sn;
CREATE TABLE sn.a_big (id bigint PRIMARY KEY, v text);
INSERT INTO sn.a_big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 15000) g;
CREATE TABLE sn.b_mid (id bigint PRIMARY KEY, v text);
INSERT INTO sn.b_mid SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 6000) g;
CREATE TABLE sn.c_last (id bigint PRIMARY KEY, v text);
INSERT INTO sn.c_last SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 6000) g;
ANALYZE;";
    let options = Options {
        capture_env: env(&[
            ("PG2BQ_BACKFILL_RANGE_BLOCKS", "16"),
            ("PG2BQ_BACKFILL_CONCURRENCY", "2"),
            ("PG2BQ_BATCH_MAX_ROWS", "100"),
        ]),
        wait_for_backfill: false,
        start_capture: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("snapshots", &["sn"], schema, options).await;
    // A sampler: the database's temporary slots and what the copying connections hold. Each
    // sample also uses a transaction id, so that later snapshots have later horizons.
    let sampler = session(&pipeline, "pg2bq-e2e-sampler").await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&done);
    let sampling = tokio::spawn(async move {
        let mut seen = Seen::default();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let row = sampler
                .query_one(
                    "SELECT ARRAY(SELECT slot_name::text FROM pg_replication_slots \
                                  WHERE database = current_database() AND temporary), \
                            ARRAY(SELECT substring(query FROM '\"sn\"\\.\"([a-z_]+)\"') || ' ' || backend_xmin::text \
                                  FROM pg_stat_activity WHERE application_name = 'pg2bq-backfill-copy' \
                                    AND backend_xmin IS NOT NULL AND query LIKE 'COPY%'), \
                            txid_current()",
                    &[],
                )
                .await
                .expect("a sample");
            let slots: Vec<String> = row.get(0);
            seen.most_temporary_slots = seen.most_temporary_slots.max(slots.len());
            seen.temporary_slots.extend(slots);
            for copying in row.get::<_, Vec<Option<String>>>(1).into_iter().flatten() {
                if let Some((table, xmin)) = copying.split_once(' ') {
                    seen.xmins
                        .entry(table.to_owned())
                        .or_default()
                        .insert(xmin.parse().expect("an xid"));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    });
    pipeline.start_capture().await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(180)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = sampling.await.expect("the sampler");
    assert_eq!(reports.len(), 3);
    assert_eq!(
        seen.most_temporary_slots, 1,
        "one snapshot at a time: {seen:?}"
    );
    assert!(
        seen.temporary_slots.len() >= 3,
        "a snapshot per table: {seen:?}"
    );
    // Each table read from one snapshot, and each later table's snapshot newer: the horizon
    // that holds back vacuum moved on when a table was done.
    let xmins: Vec<i64> = ["a_big", "b_mid", "c_last"]
        .iter()
        .map(|table| {
            let of = seen.xmins.get(*table).cloned().unwrap_or_default();
            assert_eq!(of.len(), 1, "{table} read from one snapshot: {seen:?}");
            *of.iter().next().expect("an xmin")
        })
        .collect();
    assert!(
        xmins[0] < xmins[1] && xmins[1] < xmins[2],
        "later tables hold later horizons: {xmins:?}"
    );
    let ranges = pipeline
        .state()
        .ranges(&pipeline.sql)
        .await
        .expect("ranges");
    let mut snapshots: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for range in &ranges {
        snapshots
            .entry(range.range.table.table.clone())
            .or_default()
            .extend(range.snapshot_lsn.clone());
    }
    let per_table: Vec<&BTreeSet<String>> = snapshots.values().collect();
    assert!(
        per_table.iter().all(|s| s.len() == 1),
        "one snapshot per table: {snapshots:?}"
    );
    let distinct: BTreeSet<&String> = per_table.iter().flat_map(|s| s.iter()).collect();
    assert_eq!(distinct.len(), 3, "three snapshots: {snapshots:?}");
}
