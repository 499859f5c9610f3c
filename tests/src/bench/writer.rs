//! The writer's conversion in process: push request bodies (Pub/Sub envelope, base64, change
//! batch JSON) to encoded BigQuery proto rows, on one thread, as `/push` does before it appends.

use super::probe::thread_cpu_seconds;
use super::report::Summary;
use base64::Engine;
use pg2bq_bigquery::rest::FieldSpec;
use pg2bq_core::bq_naming::BqTableName;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::seq::Seq;
use pg2bq_core::wire::{Change, ChangeBatch, ColumnSpec, Op, TableId, Value, WIRE_VERSION};
use pg2bq_writer::http::envelope;
use pg2bq_writer::modes::rows::change_rows;
use pg2bq_writer::row_layout::RowLayout;
use pg2bq_writer::shape::TableShape;
use serde_json::json;

/// Changes per batch, as capture's default batch limit.
const BATCH_CHANGES: u64 = 1000;

fn column(name: &str, pg_type: &str, type_modifier: i32, key: bool) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        pg_type: pg_type.into(),
        type_modifier,
        key,
    }
}

fn columns() -> Vec<ColumnSpec> {
    vec![
        column("id", "int8", -1, true),
        column("name", "text", -1, false),
        column("amount", "numeric", ((12 << 16) | 2) + 4, false),
        column("qty", "int4", -1, false),
        column("price", "float8", -1, false),
        column("active", "bool", -1, false),
        column("created", "date", -1, false),
        column("updated_at", "timestamptz", -1, false),
        column("attributes", "jsonb", -1, false),
    ]
}

fn row(id: u64) -> Vec<Value> {
    let text = |s: String| Value::Text(s);
    vec![
        text(id.to_string()),
        text(format!("item {id:032x}")),
        text(format!("{}.{:02}", id % 100_000, id % 100)),
        text((id % 1000).to_string()),
        if id.is_multiple_of(10) {
            Value::Null
        } else {
            text(format!("{}.25", id * 3))
        },
        text(if id.is_multiple_of(2) { "t" } else { "f" }.into()),
        text(format!("2024-{:02}-{:02}", id % 12 + 1, id % 28 + 1)),
        text(format!(
            "2024-05-{:02} {:02}:{:02}:{:02}.{:06}+00",
            id % 28 + 1,
            id % 24,
            id % 60,
            (id * 7) % 60,
            (id * 7919) % 1_000_000
        )),
        text(format!(
            r#"{{"color": "red", "size": {}, "tags": ["a", "b"]}}"#,
            id % 50
        )),
    ]
}

/// A push request body with `BATCH_CHANGES` changes from `first_id`: inserts, then updates.
fn push_body(first_id: u64) -> Vec<u8> {
    let changes = (0..BATCH_CHANGES)
        .map(|i| {
            let id = first_id + i;
            Change {
                op: if i % 2 == 0 { Op::Insert } else { Op::Update },
                seq: Seq::new(Lsn(0x1_0000_0000 + id * 100), i + 1),
                commit_time_us: 1_714_000_000_000_000 + id as i64,
                xid: 1000 + (id / 100) as u32,
                new: Some(row(id)),
                old: None,
            }
        })
        .collect();
    let batch = ChangeBatch {
        version: WIRE_VERSION,
        source: TableId {
            schema: "bench".into(),
            table: "items".into(),
        },
        columns: columns(),
        changes,
        generation: 0,
        control: None,
    };
    let data = base64::engine::general_purpose::STANDARD.encode(batch.to_json());
    serde_json::to_vec(&json!({
        "message": {"data": data, "attributes": {"encoding": "json", "table": "bench.items"}, "messageId": "1"},
        "subscription": "projects/p/subscriptions/s",
    }))
    .expect("json")
}

/// Converts push bodies for about `seconds` of CPU time on one thread; records rows per second
/// of that thread's CPU time, and the share of decoding (envelope, base64, JSON).
pub fn writer_rows_per_core(summary: &mut Summary, seconds: f64) {
    let (rows, cpu, decode_cpu) = std::thread::spawn(move || convert_for(seconds))
        .join()
        .expect("the writer benchmark thread");
    summary.set("writer_rows_per_s_per_core", rows as f64 / cpu);
    summary.set("writer_decode_share", decode_cpu / cpu);
    summary.note(
        "writer_rows_per_s_per_core",
        format!(
            "push bodies of {BATCH_CHANGES} changes (9 columns: int8 key, text, numeric, int4, float8, \
             bool, date, timestamptz, jsonb) to change-table proto rows: envelope, base64 and JSON \
             decoding, value conversion, proto encoding; {rows} rows over {cpu:.2} s of one thread's CPU time"
        ),
    );
}

fn convert_for(seconds: f64) -> (u64, f64, f64) {
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| push_body(i * BATCH_CHANGES + 1)).collect();
    let (_, first) = envelope::parse(&bodies[0]).expect("a push body");
    let shape = TableShape::new(
        BqTableName {
            dataset: "bench".into(),
            table: "items".into(),
        },
        &first.columns,
    );
    let fields = shape.change_fields();
    let table: Vec<FieldSpec> = fields
        .iter()
        .map(|(name, bq_type)| FieldSpec {
            name: name.clone(),
            bq_type: bq_type.name().to_owned(),
            mode: "NULLABLE".into(),
            description: None,
        })
        .collect();
    let layout = RowLayout::new(&table, &fields).expect("layout");
    let (mut rows, mut decode_cpu) = (0u64, 0.0);
    let started = thread_cpu_seconds();
    let mut encoded_bytes = 0usize;
    while thread_cpu_seconds() - started < seconds {
        for body in &bodies {
            let before = thread_cpu_seconds();
            let (_, batch) = envelope::parse(body).expect("a push body");
            decode_cpu += thread_cpu_seconds() - before;
            let change_rows = change_rows(&batch, &shape);
            assert!(change_rows.quarantined.is_empty(), "every change converts");
            let encoded: Vec<Vec<u8>> = change_rows.rows.iter().map(|r| layout.encode(r)).collect();
            encoded_bytes += encoded.iter().map(Vec::len).sum::<usize>();
            rows += encoded.len() as u64;
        }
    }
    assert!(encoded_bytes > 0);
    (rows, thread_cpu_seconds() - started, decode_cpu)
}
