use super::verdict::Facts;
use super::*;
use pg2bq_source::state::shapes::{RecordedShape, ShapeColumn, ShapeRecord};

fn column(
    name: &str,
    type_oid: u32,
    pg_type: &str,
    bq_type: &str,
    key: bool,
    attnum: i16,
) -> ShapeColumn {
    ShapeColumn {
        name: name.into(),
        type_oid,
        type_modifier: -1,
        pg_type: pg_type.into(),
        bq_type: bq_type.into(),
        key,
        attnum: Some(attnum),
    }
}

fn shape(columns: Vec<ShapeColumn>) -> RecordedShape {
    RecordedShape {
        identity: "d".into(),
        columns,
        storage: Some("5:5".into()),
    }
}

fn base() -> Vec<ShapeColumn> {
    vec![
        column("id", 23, "int4", "INT64", true, 1),
        column("name", 25, "text", "STRING", false, 2),
    ]
}

fn record(columns: Vec<ShapeColumn>) -> ShapeRecord {
    ShapeRecord {
        table: TableId {
            schema: "s".into(),
            table: "t".into(),
        },
        generation: 2,
        from_lsn: Lsn(100),
        relation_id: 7,
        shape: shape(columns),
        dropped: false,
        reason: None,
    }
}

fn facts(filled: &[(&str, i16, bool)], rewritten: bool) -> Facts {
    Facts {
        columns: filled
            .iter()
            .map(|(n, a, f)| ((*n).to_owned(), (*a, *f)))
            .collect(),
        rewritten,
        storage: None,
    }
}

fn kind(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::InPlace => "in place",
        Verdict::Copy(_) => "copy",
        Verdict::NewGeneration(_) => "new generation",
    }
}

#[test]
fn a_nullable_column_without_default_is_added_in_place() {
    let mut new = base();
    new.push(column("note", 25, "text", "STRING", false, 3));
    let f = facts(
        &[("id", 1, false), ("name", 2, false), ("note", 3, false)],
        false,
    );
    assert_eq!(
        kind(&classify(&record(base()), 7, &shape(new), &f)),
        "in place"
    );
}

#[test]
fn a_column_added_with_a_default_copies_the_table_again() {
    let mut new = base();
    new.push(column("flag", 16, "bool", "BOOL", false, 3));
    let f = facts(
        &[("id", 1, false), ("name", 2, false), ("flag", 3, true)],
        false,
    );
    let verdict = classify(&record(base()), 7, &shape(new.clone()), &f);
    assert_eq!(kind(&verdict), "copy");
    // A volatile default rewrites the table instead of recording a missing value.
    let f = facts(
        &[("id", 1, false), ("name", 2, false), ("flag", 3, false)],
        true,
    );
    assert_eq!(
        kind(&classify(&record(base()), 7, &shape(new.clone()), &f)),
        "copy"
    );
    // The catalogue read does not show the column: whether it was filled is unknown.
    let f = facts(&[("id", 1, false), ("name", 2, false)], false);
    assert_eq!(kind(&classify(&record(base()), 7, &shape(new), &f)), "copy");
}

#[test]
fn dropped_renamed_and_retyped_columns_start_a_generation() {
    let f = facts(&[("id", 1, false), ("name", 2, false)], false);
    let dropped = vec![column("id", 23, "int4", "INT64", true, 1)];
    assert_eq!(
        kind(&classify(&record(base()), 7, &shape(dropped), &f)),
        "new generation"
    );
    let renamed = vec![
        column("id", 23, "int4", "INT64", true, 1),
        column("title", 25, "text", "STRING", false, 2),
    ];
    assert_eq!(
        kind(&classify(&record(base()), 7, &shape(renamed), &f)),
        "new generation"
    );
    let retyped = vec![
        column("id", 23, "int4", "INT64", true, 1),
        column("name", 23, "int4", "INT64", false, 2),
    ];
    assert_eq!(
        kind(&classify(&record(base()), 7, &shape(retyped), &f)),
        "new generation"
    );
    let readded = facts(&[("id", 1, false), ("name", 3, false)], false);
    assert_eq!(
        kind(&classify(&record(base()), 7, &shape(base()), &readded)),
        "new generation"
    );
}

#[test]
fn widening_stays_in_place_unless_postgresql_rewrote_the_table() {
    let old = vec![
        column("id", 21, "int2", "INT64", true, 1),
        column("name", 1043, "varchar", "STRING", false, 2),
    ];
    let new = vec![
        column("id", 21, "int2", "INT64", true, 1),
        ShapeColumn {
            type_modifier: 104,
            ..column("name", 1043, "varchar", "STRING", false, 2)
        },
    ];
    let f = facts(&[("id", 1, false), ("name", 2, false)], false);
    assert_eq!(
        kind(&classify(&record(old.clone()), 7, &shape(new), &f)),
        "in place"
    );
    let int8 = vec![
        column("id", 20, "int8", "INT64", true, 1),
        column("name", 1043, "varchar", "STRING", false, 2),
    ];
    let rewritten = facts(&[("id", 1, false), ("name", 2, false)], true);
    assert_eq!(
        kind(&classify(&record(old), 7, &shape(int8), &rewritten)),
        "copy"
    );
}

#[test]
fn another_table_or_key_under_the_name_starts_a_generation() {
    let f = facts(&[("id", 1, false), ("name", 2, false)], false);
    assert_eq!(
        kind(&classify(&record(base()), 8, &shape(base()), &f)),
        "new generation"
    );
    let rekeyed = vec![
        column("id", 23, "int4", "INT64", false, 1),
        column("name", 25, "text", "STRING", true, 2),
    ];
    assert_eq!(
        kind(&classify(&record(base()), 7, &shape(rekeyed), &f)),
        "new generation"
    );
    let mut gone = record(base());
    gone.dropped = true;
    assert_eq!(
        kind(&classify(&gone, 7, &shape(base()), &f)),
        "new generation"
    );
}
