//! PostgreSQL's COPY text format, turned straight into change batch JSON.
//!
//! COPY prints one row per line, fields separated by tabs, `\N` for NULL, and backslash escapes
//! (`\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\v`; any other escaped byte stands for itself). Values
//! are the types' output forms, exactly as the replication stream sends them. A backfill does not
//! need them as values: each line becomes one `read` change of the batch's JSON directly, with
//! COPY's escapes rewritten as JSON's, so that a row costs no allocation. The result is the JSON
//! that [`ChangeBatch::to_json`] writes for the same changes. Protected columns
//! ([`TableProtection`]) are the exception: their fields are unescaped, hashed or masked, and
//! written as the protected text, and the batch describes them as `text`.

use crate::pipeline::batcher::BatchLimits;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::protect::TableProtection;
use pg2bq_core::seq::Seq;
use pg2bq_core::wire::{Change, ChangeBatch, Op, Value};

/// A batch body ready to publish: JSON of a [`ChangeBatch`], its number of changes and the
/// sequence numbers of its first and last rows.
#[derive(Debug)]
pub struct JsonBatch {
    /// The JSON.
    pub json: Vec<u8>,
    /// Number of changes.
    pub changes: usize,
    /// Sequence number of the first row.
    pub first_seq: Seq,
    /// Sequence number of the last row.
    pub last_seq: Seq,
}

/// Splits a stream of COPY output chunks into batches of `read` changes, as JSON.
#[derive(Debug)]
pub struct CopyBatches {
    /// The batch's JSON up to its first change: `{"version":..,"columns":[..],"changes":[`.
    batch_prefix: Vec<u8>,
    /// Every change's JSON up to its sequence number: `{"op":"read","seq":"`.
    before_seq: Vec<u8>,
    /// From after the sequence number to the values: `","commit_time_us":..,"new":[`.
    after_seq: Vec<u8>,
    /// The snapshot's consistent point and the range's first block (every row's `seq`).
    consistent_point: Lsn,
    range: u64,
    /// Rows seen so far: the next row's position in the range.
    rows: u64,
    /// Sequence number of the open batch's first row.
    open_first: Option<Seq>,
    width: usize,
    /// The table's protected columns, if it has any.
    protection: Option<TableProtection>,
    limits: BatchLimits,
    /// An incomplete line carried to the next chunk.
    pending: Vec<u8>,
    open: Vec<u8>,
    open_changes: usize,
}

impl CopyBatches {
    /// Batches of the table that `template` describes (its changes are ignored), read from the
    /// snapshot with `consistent_point` by the range starting at block `range`: row n of the
    /// range has sequence number `Seq::snapshot_row(consistent_point, range, n)`, commit time
    /// `commit_time_us` and transaction id 0. The columns `protection` names are protected.
    pub fn new(
        template: &ChangeBatch,
        protection: Option<TableProtection>,
        consistent_point: Lsn,
        range: u64,
        commit_time_us: i64,
        limits: BatchLimits,
    ) -> Self {
        let mut empty = ChangeBatch {
            changes: Vec::new(),
            ..template.clone()
        };
        if let Some(protection) = &protection {
            protection.protect_columns(&mut empty.columns);
        }
        let marker = Seq::snapshot_row(consistent_point, range, 0);
        let change = Change {
            op: Op::Read,
            seq: marker,
            commit_time_us,
            xid: 0,
            new: Some(Vec::new()),
            old: None,
        };
        let json = without_closing(
            serde_json::to_vec(&change).expect("a change always serialises"),
            b"]}",
        );
        let marker_text = marker.to_string();
        let at = json
            .windows(marker_text.len())
            .position(|w| w == marker_text.as_bytes())
            .expect("the change's JSON holds its sequence number");
        CopyBatches {
            batch_prefix: without_closing(empty.to_json(), b"]}"),
            before_seq: json[..at].to_vec(),
            after_seq: json[at + marker_text.len()..].to_vec(),
            consistent_point,
            range,
            rows: 0,
            open_first: None,
            width: template.columns.len(),
            protection,
            limits,
            pending: Vec::new(),
            open: Vec::new(),
            open_changes: 0,
        }
    }

    /// Feeds a chunk; returns the batches it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<JsonBatch>, String> {
        let mut done = Vec::new();
        let mut rest = chunk;
        if !self.pending.is_empty() {
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                self.pending.extend_from_slice(rest);
                return Ok(done);
            };
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&rest[..end]);
            self.row(&line, &mut done)?;
            rest = &rest[end + 1..];
        }
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.row(&rest[..end], &mut done)?;
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(done)
    }

    /// Closes the open batch, if it holds any change.
    pub fn finish(&mut self) -> Option<JsonBatch> {
        (self.open_changes > 0).then(|| self.close())
    }

    /// Whether an incomplete line is left over (the stream ended mid-row).
    pub fn has_partial_row(&self) -> bool {
        !self.pending.is_empty()
    }

    fn row(&mut self, line: &[u8], done: &mut Vec<JsonBatch>) -> Result<(), String> {
        if self.open_changes == 0 {
            self.open.reserve(self.limits.max_bytes.min(1 << 20));
            self.open.extend_from_slice(&self.batch_prefix);
        } else {
            self.open.push(b',');
        }
        let seq = Seq::snapshot_row(self.consistent_point, self.range, self.rows);
        self.rows = self.rows.saturating_add(1);
        self.open_first.get_or_insert(seq);
        self.open.extend_from_slice(&self.before_seq);
        self.open
            .extend_from_slice(seq.to_text().as_str().as_bytes());
        self.open.extend_from_slice(&self.after_seq);
        let mut fields = 0;
        for field in line.split(|b| *b == b'\t') {
            if fields > 0 {
                self.open.push(b',');
            }
            let protected = match &self.protection {
                Some(protection) if field != b"\\N" && protection.method(fields).is_some() => {
                    protection.protect(fields, &unescape(field)?)
                }
                _ => None,
            };
            match protected {
                Some(text) => serde_json::to_writer(&mut self.open, &text)
                    .map_err(|e| format!("writing a value: {e}"))?,
                None => json_value(field, &mut self.open)?,
            }
            fields += 1;
        }
        if fields != self.width {
            return Err(format!(
                "a row has {fields} fields for {} columns",
                self.width
            ));
        }
        self.open.extend_from_slice(b"]}");
        self.open_changes += 1;
        if self.open_changes >= self.limits.max_rows || self.open.len() >= self.limits.max_bytes {
            done.push(self.close());
        }
        Ok(())
    }

    fn close(&mut self) -> JsonBatch {
        self.open.extend_from_slice(b"]}");
        let changes = std::mem::take(&mut self.open_changes);
        let first = self.open_first.take().unwrap_or_else(|| self.last_seq());
        JsonBatch {
            json: std::mem::take(&mut self.open),
            changes,
            first_seq: first,
            last_seq: self.last_seq(),
        }
    }

    /// Sequence number of the last row seen.
    fn last_seq(&self) -> Seq {
        Seq::snapshot_row(
            self.consistent_point,
            self.range,
            self.rows.saturating_sub(1),
        )
    }
}

fn without_closing(mut json: Vec<u8>, closing: &[u8]) -> Vec<u8> {
    assert!(json.ends_with(closing), "JSON ends with {closing:?}");
    json.truncate(json.len() - closing.len());
    json
}

/// Writes one COPY field as a JSON value: `null` for `\N`, else the unescaped text as a string,
/// or, for text that is not UTF-8 (a SQL_ASCII database stores any bytes), its bytes as
/// `{"invalid_utf8": "<base64>"}` ([`Value::InvalidUtf8`]).
fn json_value(field: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if field == b"\\N" {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    // COPY escapes only ASCII bytes, so an escaped field is UTF-8 exactly when its text is.
    if std::str::from_utf8(field).is_err() {
        let bytes = unescape(field)?;
        serde_json::to_writer(&mut *out, &Value::from_bytes(&bytes))
            .map_err(|e| format!("writing a value: {e}"))?;
        return Ok(());
    }
    out.push(b'"');
    let mut plain = 0; // start of the bytes not yet written
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' && b != b'"' && b >= 0x20 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&field[plain..i]);
        let byte = if b == b'\\' {
            i += 1;
            escaped(field.get(i))?
        } else {
            b
        };
        json_escape(byte, out);
        i += 1;
        plain = i;
    }
    out.extend_from_slice(&field[plain..]);
    out.push(b'"');
    Ok(())
}

/// The byte a COPY escape `\<after>` stands for.
fn escaped(after: Option<&u8>) -> Result<u8, String> {
    Ok(match after.ok_or("a field ends with a lone backslash")? {
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        other => *other,
    })
}

/// The bytes of a COPY field with its escapes undone.
fn unescape(field: &[u8]) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(field.len());
    let mut rest = field.iter();
    while let Some(&b) = rest.next() {
        bytes.push(if b == b'\\' { escaped(rest.next())? } else { b });
    }
    Ok(bytes)
}

/// Writes one byte inside a JSON string, escaped as serde_json escapes it.
fn json_escape(byte: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b if b < 0x20 => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        b => out.push(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::lsn::Lsn;
    use pg2bq_core::wire::{ColumnSpec, TableId, WIRE_VERSION};
    use std::time::Duration;

    fn template(width: usize) -> ChangeBatch {
        ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "s".into(),
                table: "t\"q".into(),
            },
            columns: (0..width)
                .map(|i| ColumnSpec {
                    name: format!("c{i}"),
                    pg_type: "text".into(),
                    type_modifier: -1,
                    key: i == 0,
                })
                .collect(),
            changes: Vec::new(),
            // A later generation: the batches carry it.
            generation: 3,
            control: None,
        }
    }

    fn limits(max_rows: usize) -> BatchLimits {
        BatchLimits {
            max_rows,
            max_bytes: 1 << 20,
            max_delay: Duration::from_millis(100),
        }
    }

    fn expected(rows: Vec<Vec<Value>>, first_row: u64) -> Vec<u8> {
        ChangeBatch {
            changes: rows
                .into_iter()
                .zip(first_row..)
                .map(|(new, n)| Change {
                    op: Op::Read,
                    seq: Seq::snapshot_row(Lsn(0x1234), 64, n),
                    commit_time_us: 42,
                    xid: 0,
                    new: Some(new),
                    old: None,
                })
                .collect(),
            ..template(3)
        }
        .to_json()
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn rows_split_across_chunks_become_the_json_of_their_changes() {
        let mut batches = CopyBatches::new(&template(3), None, Lsn(0x1234), 64, 42, limits(2));
        assert!(
            batches
                .push(b"1\ta\\tb\\\\c\t\\N\n2\tx")
                .unwrap()
                .is_empty()
        );
        assert!(batches.has_partial_row());
        let done = batches
            .push(b"y\\ny \"q\" \x01\\v\t\\\\x00ff\n3\t\\\\N\t\n")
            .unwrap();
        assert!(!batches.has_partial_row());
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].changes, 2);
        let first = vec![
            vec![text("1"), text("a\tb\\c"), Value::Null],
            vec![text("2"), text("xy\ny \"q\" \u{1}\u{b}"), text("\\x00ff")],
        ];
        assert_eq!(
            String::from_utf8(done[0].json.clone()).unwrap(),
            String::from_utf8(expected(first, 0)).unwrap()
        );
        assert_eq!(done[0].first_seq, Seq::snapshot_row(Lsn(0x1234), 64, 0));
        assert_eq!(done[0].last_seq, Seq::snapshot_row(Lsn(0x1234), 64, 1));
        let last = batches.finish().expect("the open batch");
        assert_eq!(last.changes, 1);
        assert_eq!(
            last.json,
            expected(vec![vec![text("3"), text("\\N"), text("")]], 2)
        );
        assert_eq!(last.first_seq, last.last_seq);
        assert!(batches.finish().is_none());
        let parsed = ChangeBatch::from_json(&last.json).unwrap();
        assert_eq!(parsed.changes[0].new.as_ref().unwrap()[1], text("\\N"));
    }

    #[test]
    fn refuses_rows_of_the_wrong_width_and_broken_escapes() {
        let new = || CopyBatches::new(&template(3), None, Lsn(1), 0, 42, limits(10));
        let mut batches = new();
        let err = batches.push(b"1\t2\n").unwrap_err();
        assert!(err.contains("2 fields for 3 columns"), "{err}");
        let mut batches = new();
        assert!(batches.push(b"1\t2\t3\\\n").is_err());
    }

    #[test]
    fn text_that_is_not_utf8_becomes_its_bytes() {
        let mut batches = CopyBatches::new(&template(3), None, Lsn(0x1234), 64, 42, limits(10));
        assert!(
            batches
                .push(b"1\tcaf\xe9\\t\xff\tcaf\xc3\xa9\n")
                .unwrap()
                .is_empty()
        );
        let last = batches.finish().expect("the open batch");
        let row = vec![
            text("1"),
            Value::InvalidUtf8(b"caf\xe9\t\xff".to_vec()),
            text("café"),
        ];
        assert_eq!(
            String::from_utf8(last.json.clone()).unwrap(),
            String::from_utf8(expected(vec![row.clone()], 0)).unwrap()
        );
        let parsed = ChangeBatch::from_json(&last.json).unwrap();
        assert_eq!(parsed.changes[0].new.as_ref().unwrap(), &row);
    }

    #[test]
    fn protected_columns_are_hashed_and_masked_as_the_stream_does() {
        use pg2bq_core::config::Secret;
        use pg2bq_core::protect::{ProtectSetting, Protection};
        let protection = Protection::new(
            ProtectSetting::parse("s.*=c1:hmac,c2:mask").unwrap(),
            Some(&Secret::from("sixteen bytes or more".to_owned())),
        )
        .unwrap();
        let template = template(3);
        let table = protection.table(&template.source, &template.columns);
        let mut batches =
            CopyBatches::new(&template, table.clone(), Lsn(0x1234), 64, 42, limits(10));
        assert!(
            batches
                .push(b"1\ta\\tb\tsecret\n2\t\\N\t\\N\n")
                .unwrap()
                .is_empty()
        );
        let last = batches.finish().expect("the open batch");
        // The stream's way: the batch of clear values, protected as a whole.
        let mut rows = vec![
            vec![text("1"), text("a\tb"), text("secret")],
            vec![text("2"), Value::Null, Value::Null],
        ];
        let table = table.expect("protected columns");
        for row in &mut rows {
            table.protect_row(row);
        }
        let mut expected: ChangeBatch = serde_json::from_slice(&expected(rows, 0)).unwrap();
        table.protect_columns(&mut expected.columns);
        assert_eq!(
            String::from_utf8(last.json.clone()).unwrap(),
            String::from_utf8(expected.to_json()).unwrap()
        );
        let text = String::from_utf8(last.json).unwrap();
        assert!(
            !text.contains("secret") && text.contains("\"****\""),
            "{text}"
        );
    }
}
