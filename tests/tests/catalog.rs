//! One catalogue reader for capture, discover and validate: a table with a domain over an array,
//! an enum array, a generated column and a dropped column is replicated, every command describes
//! it alike, and `validate` passes on it. Needs the local stack (`make test` starts it).

use pg2bq_e2e::pipeline::TestPipeline;
use pg2bq_source::catalog::Catalog;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE SCHEMA cat;
CREATE TYPE cat.mood AS ENUM ('sad', 'happy', 'curious');
CREATE DOMAIN cat.tags AS text[] CHECK (cardinality(VALUE) <= 5);
CREATE DOMAIN cat.scores AS int[];
CREATE TABLE cat.items (
    id int PRIMARY KEY,
    gone text,
    tags cat.tags,
    scores cat.scores,
    moods cat.mood[],
    qty int NOT NULL,
    price numeric(10, 2) NOT NULL,
    total numeric GENERATED ALWAYS AS (qty * price) STORED,
    note text
);
ALTER TABLE cat.items DROP COLUMN gone;
INSERT INTO cat.items (id, tags, scores, moods, qty, price, note)
SELECT g, ARRAY['t' || g, 'x'], ARRAY[g, NULL, -g], ARRAY['happy', 'sad']::cat.mood[], g, 1.25, 'row ' || g
FROM generate_series(1, 40) g;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_over_arrays_enum_arrays_and_generated_columns_replicate_and_validate() {
    let mut pipeline = TestPipeline::start("catalog", &["cat"], SCHEMA).await;
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO cat.items (id, tags, scores, moods, qty, price) \
               VALUES (100, '{}', '{7}', '{curious,NULL}', 3, 2.50); \
             UPDATE cat.items SET moods = '{sad}', tags = ARRAY['a\"b', NULL], qty = qty + 1 WHERE id % 3 = 0; \
             DELETE FROM cat.items WHERE id % 10 = 0;",
        )
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("cat.items".to_owned(), 36)]
    );

    // The catalogue describes the table as pgoutput sends it: no dropped or generated column.
    let table = Catalog::new()
        .publication_tables(&pipeline.sql, "e2e_catalog")
        .await
        .expect("catalogue")
        .remove(0);
    let columns: Vec<(String, String, bool)> = table
        .columns
        .iter()
        .map(|c| (c.spec.name.clone(), c.spec.pg_type.clone(), c.spec.key))
        .collect();
    let expected = [
        ("id", "int4", true),
        ("tags", "text[]", false),
        ("scores", "int4[]", false),
        ("moods", "enum[]", false),
        ("qty", "int4", false),
        ("price", "numeric", false),
        ("note", "text", false),
    ];
    let expected: Vec<(String, String, bool)> = expected
        .iter()
        .map(|(n, t, k)| (n.to_string(), t.to_string(), *k))
        .collect();
    assert_eq!(columns, expected);
    assert_eq!(table.generated, vec!["total".to_owned()]);

    // What the writer created from the stream has exactly those columns, so validate's
    // expectations and the mirror agree.
    let target = pipeline
        .stack
        .target("e2e_catalog_")
        .layout()
        .expect("layout")
        .target(&table.id);
    let names = pg2bq_e2e::mirror::mirror_columns(&pipeline.stack, &target.dataset, &target.table)
        .await
        .expect("the mirror exists");
    assert_eq!(
        names,
        ["id", "tags", "scores", "moods", "qty", "price", "note"]
    );

    // discover shows the generated column as left out.
    let selection = pg2bq_core::selection::TableSelection::new(&["cat"], Vec::<String>::new())
        .expect("selection");
    let discovered = pg2bq_cli::discover::discover(&pipeline.sql, &selection, "pg2bq")
        .await
        .expect("discover");
    assert_eq!(discovered.len(), 1);
    assert_eq!(discovered[0].generated, vec!["total".to_owned()]);
    assert_eq!(discovered[0].columns.len(), 7);
    assert_eq!(discovered[0].columns[1].pg_type, "cat.tags");
    assert_eq!(discovered[0].columns[1].bigquery_type, "JSON");
}
