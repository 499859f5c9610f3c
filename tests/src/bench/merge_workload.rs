//! The workload of the MERGE benchmark: changes of a fixed set of keys, so that the change
//! table's history grows while the mirror keeps its size; each batch as the push request body
//! the writer receives, with what it costs as a Pub/Sub message; and the rows the mirror must
//! end with.

use crate::chaos::Rng;
use base64::Engine;
use pg2bq_core::civil::{civil_from_days, now_us};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::seq::Seq;
use pg2bq_core::wire::{Change, ChangeBatch, ColumnSpec, Op, TableId, Value, WIRE_VERSION};
use serde_json::json;
use std::io::Write;

/// The source schema of the table (the writer's dataset is its prefix and this).
pub const SCHEMA: &str = "bench";
/// The source table.
pub const TABLE: &str = "items";

/// Bytes Pub/Sub counts per message besides its data and attributes: 20 for the publish
/// timestamp, and the message id (16 digits; its length varies).
pub const PUBSUB_MESSAGE_OVERHEAD: usize = 20 + 16;

/// A row of the mirror as the check reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `name` (text).
    pub name: String,
    /// `qty` (integer).
    pub qty: i64,
    /// `at` (timestamptz) in microseconds since the epoch.
    pub at_us: i64,
}

/// What the pushed messages would cost in Pub/Sub, as capture publishes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageBytes {
    /// Messages.
    pub messages: u64,
    /// Changes in them.
    pub changes: u64,
    /// Message data as JSON (`PG2BQ_COMPRESSION=none`).
    pub json: u64,
    /// Message data as gzip (`PG2BQ_COMPRESSION=gzip`, the Terraform default).
    pub gzip: u64,
    /// Attribute keys and values, plus [`PUBSUB_MESSAGE_OVERHEAD`] per message.
    pub attributes: u64,
}

/// The source's history of the table and the rows it leaves.
pub struct Workload {
    rows: Vec<Option<Row>>,
    inserted: u64,
    cursor: u64,
    present: u64,
    rng: Rng,
    lsn: u64,
    xid: u32,
    messages: u64,
    /// Bytes of the messages made so far.
    pub bytes: MessageBytes,
}

impl Workload {
    /// A table of `keys` keys (ids 1 to `keys`), none inserted yet.
    pub fn new(keys: u64, seed: u64) -> Self {
        Workload {
            rows: vec![None; keys as usize],
            inserted: 0,
            cursor: 0,
            present: 0,
            rng: Rng::new(seed),
            lsn: 0x1_0000_0000,
            xid: 1000,
            messages: 0,
            bytes: MessageBytes::default(),
        }
    }

    /// Changes made so far.
    pub fn changes(&self) -> u64 {
        self.bytes.changes
    }

    /// The rows the mirror must hold, by id.
    pub fn expected(&self) -> impl Iterator<Item = (u64, &Row)> {
        self.rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| Some((i as u64 + 1, row.as_ref()?)))
    }

    /// The body of a push of `n` history changes: inserts of the keys not inserted yet, then
    /// updates of the present keys in turn.
    pub fn history_push(&mut self, n: usize) -> Vec<u8> {
        let now = now_us();
        let changes = (0..n)
            .map(|ordinal| {
                if self.inserted < self.keys() {
                    self.inserted += 1;
                    self.insert(self.inserted, ordinal, now)
                } else {
                    let id = self.next_present();
                    self.update(id, ordinal, now)
                }
            })
            .collect();
        self.body(changes)
    }

    /// The body of a push of `n` new changes: a tenth deletes of present keys, a tenth inserts
    /// of absent keys (while there are some), the rest updates of present keys, at random.
    pub fn round_push(&mut self, n: usize) -> Vec<u8> {
        let now = now_us();
        let changes = (0..n)
            .map(|ordinal| {
                let absent = self.keys() - self.present;
                if ordinal < n / 10 && self.present > 1 {
                    let id = self.random(true);
                    self.delete(id, ordinal, now)
                } else if ordinal < n / 5 && absent > 0 {
                    let id = self.random(false);
                    self.insert(id, ordinal, now)
                } else {
                    let id = self.random(true);
                    self.update(id, ordinal, now)
                }
            })
            .collect();
        self.body(changes)
    }

    fn keys(&self) -> u64 {
        self.rows.len() as u64
    }

    /// The next present key after the last one updated in turn.
    fn next_present(&mut self) -> u64 {
        loop {
            self.cursor = self.cursor % self.keys() + 1;
            if self.rows[self.cursor as usize - 1].is_some() {
                return self.cursor;
            }
        }
    }

    /// A random key that is present (or absent).
    fn random(&mut self, present: bool) -> u64 {
        loop {
            let id = self.rng.below(self.keys()) + 1;
            if self.rows[id as usize - 1].is_some() == present {
                return id;
            }
        }
    }

    fn new_row(&mut self, id: u64, at_us: i64) -> Row {
        let mix = self.rng.next_u64();
        Row {
            name: format!("row {:016x}{:016x}", mix, mix.rotate_left(17) ^ id),
            qty: (mix % 1000) as i64,
            at_us,
        }
    }

    fn insert(&mut self, id: u64, ordinal: usize, now: i64) -> Change {
        let row = self.new_row(id, now);
        let change = self.change(Op::Insert, Some(values(id, &row)), None, ordinal, now);
        self.rows[id as usize - 1] = Some(row);
        self.present += 1;
        change
    }

    fn update(&mut self, id: u64, ordinal: usize, now: i64) -> Change {
        let row = self.new_row(id, now);
        let change = self.change(Op::Update, Some(values(id, &row)), None, ordinal, now);
        self.rows[id as usize - 1] = Some(row);
        change
    }

    fn delete(&mut self, id: u64, ordinal: usize, now: i64) -> Change {
        let old = vec![
            Value::Text(id.to_string()),
            Value::Null,
            Value::Null,
            Value::Null,
        ];
        self.rows[id as usize - 1] = None;
        self.present -= 1;
        self.change(Op::Delete, None, Some(old), ordinal, now)
    }

    fn change(
        &self,
        op: Op,
        new: Option<Vec<Value>>,
        old: Option<Vec<Value>>,
        ordinal: usize,
        now: i64,
    ) -> Change {
        Change {
            op,
            seq: Seq::new(Lsn(self.lsn), ordinal as u64 + 1),
            commit_time_us: now,
            xid: self.xid,
            new,
            old,
        }
    }

    /// One transaction's changes as a push request body; counts its message's bytes.
    fn body(&mut self, changes: Vec<Change>) -> Vec<u8> {
        let first_seq = changes
            .first()
            .map(|c| c.seq.to_string())
            .unwrap_or_default();
        let last_seq = changes
            .last()
            .map(|c| c.seq.to_string())
            .unwrap_or_default();
        let count = changes.len();
        let batch = ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: SCHEMA.into(),
                table: TABLE.into(),
            },
            columns: columns(),
            changes,
            generation: 0,
            control: None,
        };
        let data = batch.to_json();
        let attributes = json!({
            "table": format!("{SCHEMA}.{TABLE}"),
            "wire_version": WIRE_VERSION.to_string(),
            "changes": count.to_string(),
            "first_seq": first_seq,
            "last_seq": last_seq,
            "encoding": "json",
        });
        let attribute_bytes: usize = attributes
            .as_object()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                    .sum()
            })
            .unwrap_or(0);
        self.bytes.messages += 1;
        self.bytes.changes += count as u64;
        self.bytes.json += data.len() as u64;
        self.bytes.gzip += gzip_len(&data) as u64;
        self.bytes.attributes += (attribute_bytes + PUBSUB_MESSAGE_OVERHEAD) as u64;
        self.lsn += 0x1000;
        self.xid += 1;
        self.messages += 1;
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        serde_json::to_vec(&json!({
            "message": {"data": data, "attributes": attributes, "messageId": self.messages.to_string()},
            "subscription": "projects/pg2bq-local/subscriptions/bench-merge",
        }))
        .expect("json")
    }
}

/// The table's columns: `id bigint PRIMARY KEY, name text, qty integer, at timestamptz` (the
/// end-to-end benchmark's table).
fn columns() -> Vec<ColumnSpec> {
    let column = |name: &str, pg_type: &str, key: bool| ColumnSpec {
        name: name.into(),
        pg_type: pg_type.into(),
        type_modifier: -1,
        key,
    };
    vec![
        column("id", "int8", true),
        column("name", "text", false),
        column("qty", "int4", false),
        column("at", "timestamptz", false),
    ]
}

fn values(id: u64, row: &Row) -> Vec<Value> {
    vec![
        Value::Text(id.to_string()),
        Value::Text(row.name.clone()),
        Value::Text(row.qty.to_string()),
        Value::Text(timestamptz_text(row.at_us)),
    ]
}

/// PostgreSQL's text of a timestamptz in UTC: `2024-05-01 12:00:00.123456+00`.
fn timestamptz_text(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let of_day = us.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let seconds = of_day / 1_000_000;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}+00",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        of_day % 1_000_000
    )
}

/// The size of `data` compressed as capture compresses message bodies.
fn gzip_len(data: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to memory");
    encoder.finish().expect("writing to memory").len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_postgresql_text() {
        assert_eq!(timestamptz_text(0), "1970-01-01 00:00:00.000000+00");
        assert_eq!(
            timestamptz_text(1_714_564_800_123_456),
            "2024-05-01 12:00:00.123456+00"
        );
    }

    #[test]
    fn the_key_set_stays_fixed_while_history_grows() {
        let mut w = Workload::new(100, 7);
        w.history_push(250);
        assert_eq!(w.expected().count(), 100);
        for _ in 0..5 {
            w.round_push(50);
        }
        let present = w.expected().count();
        assert!((90..=100).contains(&present), "{present}");
        assert!(w.expected().all(|(id, _)| (1..=100).contains(&id)));
        assert_eq!(w.changes(), 500);
        assert_eq!(w.bytes.messages, 6);
        assert!(w.bytes.gzip < w.bytes.json);
    }
}
