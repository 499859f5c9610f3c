//! Pruning of staged change tables: merged changes older than the retention go (the mirror holds
//! their result), and the mirror is unchanged, even by a late, older change. Needs the local
//! stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::time::{Duration, Instant};

fn rows(answer: Vec<Vec<Option<String>>>) -> Vec<Vec<String>> {
    answer
        .into_iter()
        .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_changes_are_pruned_and_the_mirror_stays_exact() {
    let options = Options {
        writer_env: vec![
            ("PG2BQ_CHANGE_RETENTION_SECS", "1"),
            ("PG2BQ_MERGE_OVERLAP_SECS", "1"),
        ],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA pr; CREATE TABLE pr.t (id int PRIMARY KEY, v text);";
    let mut pipeline = TestPipeline::start_with("prune", &["pr"], schema, options).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO pr.t SELECT g, 'v1' FROM generate_series(1, 5) g;
             UPDATE pr.t SET v = 'v2';
             UPDATE pr.t SET v = 'v3' WHERE id <= 3;
             TRUNCATE pr.t;
             INSERT INTO pr.t SELECT g, 'after' FROM generate_series(3, 6) g;
             UPDATE pr.t SET v = 'last' WHERE id = 6;
             DELETE FROM pr.t WHERE id = 4;",
        )
        .await
        .expect("changes");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    // Pruning runs with a table's MERGE, and a MERGE runs when the table received changes: a
    // change once the others are older than the retention.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO pr.t VALUES (7, 'trigger')")
        .await
        .expect("trigger");

    // 5 + 5 + 3 changes before the TRUNCATE, the TRUNCATE, then 4 + 1 + 1 after it: all merged
    // and older than the retention (and the overlap) when the trigger's MERGE runs, so pruned.
    // What may stay: the trigger, until a MERGE runs after it is older than the retention too.
    let project = pipeline.stack.project.clone();
    let changes = format!("`{project}.e2e_prune_pr.t__changes`");
    let remaining = format!(
        "SELECT `_pg2bq_op`, CAST(id AS STRING), IFNULL(v, '') FROM {changes} ORDER BY `_pg2bq_seq`"
    );
    let trigger = vec!["UPSERT".to_owned(), "7".into(), "trigger".into()];
    let bigquery = pipeline.stack.bigquery();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = rows(bigquery.query(&remaining).await.expect("changes").rows);
        if now.iter().all(|row| *row == trigger) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change table was not pruned of the merged changes older than the retention: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A late delivery of an older change of key 6 (newer than the TRUNCATE, older than the
    // newest change of key 6: the seq of key 3's insert) loses to the newest, pruned or not.
    let seq_of_3 = format!("SELECT `_pg2bq_seq` FROM `{project}.e2e_prune_pr.t` WHERE id = 3");
    let seq_of_3 = rows(bigquery.query(&seq_of_3).await.expect("seq").rows)[0][0].clone();
    let late = format!(
        "INSERT INTO {changes} (id, v, `_pg2bq_seq`, `_pg2bq_commit_ts`, `_pg2bq_op`) \
         SELECT 6, 'late', '{seq_of_3}', CURRENT_TIMESTAMP(), 'UPSERT'"
    );
    bigquery.query(&late).await.expect("late change");
    pipeline
        .sql
        .batch_execute("INSERT INTO pr.t VALUES (8, 'merge again')")
        .await
        .expect("another change");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(30)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");
    let mirror =
        format!("SELECT CAST(id AS STRING), v FROM `{project}.e2e_prune_pr.t` ORDER BY id");
    assert_eq!(
        rows(bigquery.query(&mirror).await.expect("mirror").rows),
        vec![
            vec!["3".to_owned(), "after".to_owned()],
            vec!["5".into(), "after".into()],
            vec!["6".into(), "last".into()],
            vec!["7".into(), "trigger".into()],
            vec!["8".into(), "merge again".into()],
        ]
    );
}
