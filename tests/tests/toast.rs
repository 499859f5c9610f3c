//! Updates that leave a TOASTed value unchanged: PostgreSQL does not send the value again. Under
//! REPLICA IDENTITY FULL capture takes it from the old tuple, so the mirror keeps it. Needs the
//! local stack.

use pg2bq_e2e::pipeline::TestPipeline;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_toast_value_survives_an_update_under_replica_identity_full() {
    // EXTERNAL storage: out of line and uncompressed, so 9,600 characters are TOASTed for sure.
    let schema = "CREATE SCHEMA tst;
        CREATE TABLE tst.doc (id int PRIMARY KEY, title text, body text);
        ALTER TABLE tst.doc ALTER COLUMN body SET STORAGE EXTERNAL;
        ALTER TABLE tst.doc REPLICA IDENTITY FULL;";
    let mut pipeline = TestPipeline::start("toast", &["tst"], schema).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO tst.doc SELECT g, 'first', (SELECT string_agg(md5((g * 1000 + i)::text), '') \
               FROM generate_series(1, 300) i) FROM generate_series(1, 3) g;
             UPDATE tst.doc SET title = 'second';
             UPDATE tst.doc SET title = 'third' WHERE id = 2;",
        )
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert!(
        reports.iter().all(|r| r.matches()),
        "every row, its 9,600-character body included, as in the source: {reports:?}"
    );
    let project = pipeline.stack.project.clone();
    let lengths = format!(
        "SELECT CAST(id AS STRING), title, CAST(LENGTH(body) AS STRING) FROM `{project}.e2e_toast_tst.doc` ORDER BY id"
    );
    let rows = pipeline
        .stack
        .bigquery()
        .query(&lengths)
        .await
        .expect("mirror")
        .rows;
    let text = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        vec![
            vec![text("1"), text("second"), text("9600")],
            vec![text("2"), text("third"), text("9600")],
            vec![text("3"), text("second"), text("9600")],
        ]
    );
    assert!(
        !pipeline.writer_log().contains("unchanged TOAST"),
        "no batch was refused"
    );
}
