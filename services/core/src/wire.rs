//! The change batch wire format (version 1): one Pub/Sub message carries changes of one table.
//!
//! A batch is self-describing: it names the source table and lists its columns with their
//! PostgreSQL types and key flags, so that any writer can create or evolve the BigQuery table
//! without shared state. Values travel in PostgreSQL's own text form, which is exact for every
//! type; the writer converts them by column type. See `services/core/docs/wire-format.md`.

use crate::error::{CoreError, Result};
use crate::seq::Seq;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The version this build writes and reads.
pub const WIRE_VERSION: u32 = 1;

/// Pub/Sub attribute names set on every message.
pub mod attributes {
    /// `schema.table` of the source table.
    pub const TABLE: &str = "table";
    /// Wire format version.
    pub const VERSION: &str = "wire_version";
    /// Number of changes in the batch.
    pub const CHANGES: &str = "changes";
    /// Sequence number of the first change.
    pub const FIRST_SEQ: &str = "first_seq";
    /// Sequence number of the last change.
    pub const LAST_SEQ: &str = "last_seq";
    /// `json` or `json+gzip`.
    pub const ENCODING: &str = "encoding";
    /// Set (to `quarantine`) on changes that `pg2bq quarantine retry` publishes again: once
    /// written, the writer records them as resolved.
    pub const RETRY: &str = "retry";
    /// Set (to `gs://bucket/object`) on a claim check: the batch is too big for a message and
    /// waits in that Cloud Storage object; the body is a [`super::ClaimCheck`].
    pub const CLAIM: &str = "claim";
    /// Set by `pg2bq deadletter replay` on a dead-lettered message it publishes again: how many
    /// times the message was replayed. The writer ignores it.
    pub const REPLAYED: &str = "replayed";
    /// Set next to [`REPLAYED`]: the replay run that published the message, so that a run never
    /// replays what it published itself (dead-lettered again meanwhile). The writer ignores it.
    pub const REPLAY_RUN: &str = "replay_run";
    /// Set by the writer on a message it forwards to the dead-letter topic because it can never
    /// write it: why (its error, cut to 1024 bytes).
    pub const DEAD_LETTER_ERROR: &str = "dead_letter_error";
    /// Set next to [`DEAD_LETTER_ERROR`]: the error's kind (`bad_batch`, `unwritable`, ...).
    pub const DEAD_LETTER_KIND: &str = "dead_letter_kind";
    /// Set next to [`DEAD_LETTER_ERROR`]: the message's id in the changes topic.
    pub const DEAD_LETTER_MESSAGE_ID: &str = "dead_letter_message_id";
    /// Set next to [`DEAD_LETTER_ERROR`]: the subscription that pushed it
    /// (`projects/P/subscriptions/S`).
    pub const DEAD_LETTER_SUBSCRIPTION: &str = "dead_letter_subscription";
    /// Set next to [`DEAD_LETTER_ERROR`]: when it was published to the changes topic (RFC 3339).
    pub const DEAD_LETTER_PUBLISHED: &str = "dead_letter_published";
    /// Set next to [`DEAD_LETTER_ERROR`]: the delivery attempt that was forwarded, when Pub/Sub
    /// counted it.
    pub const DEAD_LETTER_ATTEMPT: &str = "dead_letter_attempt";

    /// Whether `name` is one of the attributes the writer adds when it dead-letters a message
    /// (a replay publishes the message without them).
    pub fn is_dead_letter(name: &str) -> bool {
        name.starts_with("dead_letter_")
    }
}

/// The body of a claim check: where the batch is, and its size. The object holds what the body
/// of the message would have held, in the message's `encoding`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCheck {
    /// `gs://bucket/object`.
    pub claim: String,
    /// Size of the object in bytes.
    pub bytes: u64,
}

/// A source table, by schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// PostgreSQL schema (namespace).
    pub schema: String,
    /// PostgreSQL table name.
    pub table: String,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// One column of the source table as the batch describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Column name as in PostgreSQL.
    pub name: String,
    /// Canonical PostgreSQL type name of the column's base type, e.g. `int4`, `numeric`,
    /// `timestamptz`, `text[]`; see [`crate::pg_types`].
    pub pg_type: String,
    /// Type modifier (`atttypmod`), e.g. precision and scale of `numeric(p,s)`; -1 if none.
    pub type_modifier: i32,
    /// Whether the column belongs to the replica identity key (the primary key by default).
    pub key: bool,
}

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A row read by a backfill from a consistent snapshot.
    Read,
    /// An INSERT.
    Insert,
    /// An UPDATE; `old` is present when the key changed or with REPLICA IDENTITY FULL.
    Update,
    /// A DELETE; `old` holds at least the key columns.
    Delete,
    /// A TRUNCATE of the table: every row with a smaller sequence number is gone.
    Truncate,
    /// The end of a backfill that copied the whole table again from snapshots whose oldest
    /// consistent point is this change's sequence number: every row of a mirror older than it
    /// that the copy did not bring again was deleted at the source since. Logs keep their rows.
    Sweep,
}

/// One column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// The value in PostgreSQL's text output form.
    Text(String),
    /// A TOASTed value that the UPDATE did not change and PostgreSQL did not send.
    UnchangedToast,
    /// A value whose text is not UTF-8 (a database encoded `SQL_ASCII` stores any bytes): its
    /// bytes as PostgreSQL sent them. BigQuery STRING holds only UTF-8, so the writer refuses
    /// the change into its quarantine with the column and the fix.
    InvalidUtf8(Vec<u8>),
}

impl Value {
    /// The value of text that PostgreSQL sent as bytes: [`Value::Text`] if they are UTF-8,
    /// else [`Value::InvalidUtf8`].
    pub fn from_bytes(bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(text) => Value::Text(text.to_owned()),
            Err(_) => Value::InvalidUtf8(bytes.to_vec()),
        }
    }
}

/// One row change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What happened.
    pub op: Op,
    /// Position in the source's history; the newest per key wins.
    pub seq: Seq,
    /// Source commit time, microseconds since the Unix epoch.
    pub commit_time_us: i64,
    /// Source transaction id (0 for backfilled rows).
    pub xid: u32,
    /// The new row (insert, update, read), one value per column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Vec<Value>>,
    /// The old row or old key (delete; update when the key changed), one value per column,
    /// NULL for columns PostgreSQL did not send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Vec<Value>>,
}

/// A batch of changes of one table: the body of one Pub/Sub message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// Wire format version, [`WIRE_VERSION`].
    pub version: u32,
    /// The source table.
    pub source: TableId,
    /// The table's columns at the time of these changes.
    pub columns: Vec<ColumnSpec>,
    /// The table's generation: it starts at 0 and grows when the source table changes in a way
    /// its BigQuery tables cannot follow in place (a column dropped, renamed or retyped, a new
    /// key, the table dropped or created again). A writer recreates the BigQuery tables at a
    /// [`TableControl`] of a newer generation and discards batches of older ones (their rows
    /// come again with the copy that follows).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
    /// A table-level instruction instead of changes (`changes` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<TableControl>,
    /// The changes, in source order (last: a backfill writes batches by appending to it).
    pub changes: Vec<Change>,
}

/// A table-level instruction from capture to the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableControl {
    /// What to do.
    pub action: ControlAction,
    /// Why, for the logs (e.g. which column was dropped).
    pub reason: String,
    /// When capture issued it, microseconds since the Unix epoch: BigQuery tables created
    /// after it belong to the new generation already and are kept.
    pub issued_at_us: i64,
}

/// What a [`TableControl`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    /// The batch's generation starts: drop the table's BigQuery tables of older generations
    /// (the batches of the new one create them again, and a copy of the table follows).
    NewGeneration,
    /// The source table is gone (dropped, or renamed away from this name): drop its BigQuery
    /// tables and discard any batch of an older generation.
    Dropped,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ChangeBatch {
    /// A batch of `changes` of `source` with `columns`, generation 0 and no control.
    pub fn new(source: TableId, columns: Vec<ColumnSpec>, changes: Vec<Change>) -> Self {
        ChangeBatch {
            version: WIRE_VERSION,
            source,
            columns,
            changes,
            generation: 0,
            control: None,
        }
    }

    /// A control batch (no changes) for `source` at `generation`.
    pub fn control(
        source: TableId,
        columns: Vec<ColumnSpec>,
        generation: u64,
        control: TableControl,
    ) -> Self {
        ChangeBatch {
            version: WIRE_VERSION,
            source,
            columns,
            changes: Vec::new(),
            generation,
            control: Some(control),
        }
    }

    /// Serialises the batch to JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a change batch always serialises")
    }

    /// Reads a batch from JSON bytes, checking the version and the row widths. The bytes are
    /// parsed once; only a batch that does not parse is probed for its version, so that a batch
    /// of another version is named as such.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let batch: ChangeBatch = match serde_json::from_slice(bytes) {
            Ok(batch) => batch,
            Err(e) => {
                let probe: VersionProbe = serde_json::from_slice(bytes)
                    .map_err(|e| CoreError::Wire(format!("not a JSON change batch: {e}")))?;
                check_version(probe.version)?;
                return Err(CoreError::Wire(format!("malformed change batch: {e}")));
            }
        };
        check_version(batch.version)?;
        batch.check_shape()?;
        Ok(batch)
    }

    fn check_shape(&self) -> Result<()> {
        if let Some(control) = &self.control {
            if !self.changes.is_empty() {
                return Err(CoreError::Wire(format!(
                    "control batch ({:?}) for {} also holds changes",
                    control.action, self.source
                )));
            }
            return Ok(());
        }
        if self.columns.is_empty() {
            return Err(CoreError::Wire(format!(
                "batch for {} lists no columns",
                self.source
            )));
        }
        let width = self.columns.len();
        for (i, change) in self.changes.iter().enumerate() {
            for row in [&change.new, &change.old].into_iter().flatten() {
                if row.len() != width {
                    return Err(CoreError::Wire(format!(
                        "change {i} of {} has {} values for {width} columns",
                        self.source,
                        row.len()
                    )));
                }
            }
            let needs_new = matches!(change.op, Op::Read | Op::Insert | Op::Update);
            if needs_new && change.new.is_none() {
                return Err(CoreError::Wire(format!(
                    "change {i} of {} has no new row",
                    self.source
                )));
            }
            if change.op == Op::Delete && change.old.is_none() {
                return Err(CoreError::Wire(format!(
                    "delete {i} of {} has no old key",
                    self.source
                )));
            }
        }
        Ok(())
    }
}

fn check_version(version: u32) -> Result<()> {
    if version == WIRE_VERSION {
        return Ok(());
    }
    Err(CoreError::Wire(format!(
        "wire version {version} is not supported (this writer reads version {WIRE_VERSION}); \
         deploy a writer that matches the capture version"
    )))
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

impl Serialize for Seq {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.to_text().as_str())
    }
}

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Seq::parse(&text).map_err(de::Error::custom)
    }
}

const UNCHANGED_TOAST_KEY: &str = "unchanged_toast";
/// The key of a value that is not UTF-8: `{"invalid_utf8": "<its bytes in base64>"}`.
pub const INVALID_UTF8_KEY: &str = "invalid_utf8";

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Text(text) => s.serialize_str(text),
            Value::UnchangedToast => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(UNCHANGED_TOAST_KEY, &true)?;
                map.end()
            }
            Value::InvalidUtf8(bytes) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(INVALID_UTF8_KEY, &BASE64.encode(bytes))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "null, a string, {\"unchanged_toast\": true} or {\"invalid_utf8\": \"<base64>\"}",
        )
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut value = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let parsed = match key.as_ref() {
                UNCHANGED_TOAST_KEY => map.next_value::<bool>()?.then_some(Value::UnchangedToast),
                INVALID_UTF8_KEY => {
                    let text = map.next_value::<std::borrow::Cow<'de, str>>()?;
                    let bytes = BASE64.decode(text.as_bytes()).map_err(|e| {
                        de::Error::custom(format!("invalid_utf8 is not base64: {e}"))
                    })?;
                    Some(Value::InvalidUtf8(bytes))
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &[UNCHANGED_TOAST_KEY, INVALID_UTF8_KEY],
                    ));
                }
            };
            if value.is_some() {
                return Err(de::Error::custom("a value object has one key"));
            }
            value = Some(parsed);
        }
        value.flatten().ok_or_else(|| {
            de::Error::custom(
                "a value object must be {\"unchanged_toast\": true} or {\"invalid_utf8\": \"<base64>\"}",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;

    fn sample() -> ChangeBatch {
        ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "public".into(),
                table: "orders".into(),
            },
            columns: vec![
                ColumnSpec {
                    name: "id".into(),
                    pg_type: "int4".into(),
                    type_modifier: -1,
                    key: true,
                },
                ColumnSpec {
                    name: "note".into(),
                    pg_type: "text".into(),
                    type_modifier: -1,
                    key: false,
                },
            ],
            changes: vec![
                Change {
                    op: Op::Update,
                    seq: Seq::new(Lsn(0x1_0000_0010), 2),
                    commit_time_us: 1_700_000_000_000_000,
                    xid: 77,
                    new: Some(vec![Value::Text("2".into()), Value::UnchangedToast]),
                    old: Some(vec![Value::Text("1".into()), Value::Null]),
                },
                Change {
                    op: Op::Delete,
                    seq: Seq::new(Lsn(0x1_0000_0020), 1),
                    commit_time_us: 1_700_000_000_000_001,
                    xid: 78,
                    new: None,
                    old: Some(vec![Value::Text("2".into()), Value::Null]),
                },
            ],
            generation: 0,
            control: None,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let batch = sample();
        let json = batch.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"seq\":\"0000000100000010/0000000000000002\""));
        assert!(text.contains("{\"unchanged_toast\":true}"));
        assert_eq!(ChangeBatch::from_json(&json).unwrap(), batch);
    }

    #[test]
    fn values_that_are_not_utf8_travel_as_base64() {
        assert_eq!(
            Value::from_bytes(b"caf\xc3\xa9"),
            Value::Text("café".into())
        );
        let bytes = b"caf\xe9 \xff".to_vec();
        let value = Value::from_bytes(&bytes);
        assert_eq!(value, Value::InvalidUtf8(bytes));
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(json, r#"{"invalid_utf8":"Y2Fm6SD/"}"#);
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), value);
        let mut batch = sample();
        batch.changes[0].new = Some(vec![Value::Text("2".into()), value]);
        assert_eq!(ChangeBatch::from_json(&batch.to_json()).unwrap(), batch);
        for wrong in [
            r#"{"invalid_utf8":"*"}"#,
            r#"{"invalid_utf8":true}"#,
            r#"{"unchanged_toast":false}"#,
            r#"{"other":1}"#,
            r#"{"unchanged_toast":true,"invalid_utf8":"AA=="}"#,
            r#"{}"#,
        ] {
            assert!(serde_json::from_str::<Value>(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn rejects_unknown_versions_and_bad_shapes() {
        let mut batch = sample();
        batch.version = 99;
        let err = ChangeBatch::from_json(&batch.to_json()).unwrap_err();
        assert!(err.to_string().contains("wire version 99"));
        // A later version of another shape is named by its version too.
        let err = ChangeBatch::from_json(br#"{"version":2,"rows":[]}"#).unwrap_err();
        assert!(err.to_string().contains("wire version 2"), "{err}");

        let mut batch = sample();
        batch.changes[0].new = Some(vec![Value::Null]);
        let err = ChangeBatch::from_json(&batch.to_json()).unwrap_err();
        assert!(err.to_string().contains("1 values for 2 columns"), "{err}");

        assert!(ChangeBatch::from_json(b"not json").is_err());
        assert!(ChangeBatch::from_json(br#"{"version":1}"#).is_err());
    }
}
