//! PostgreSQL's COPY text format: one row per line, fields separated by tabs, `\N` for NULL and
//! backslash escapes. Values are the types' output forms, exactly as the replication stream sends
//! them.

use pg2bq_core::wire::Value;

/// Splits a stream of COPY output chunks into rows of values.
#[derive(Debug, Default)]
pub struct CopyRows {
    pending: Vec<u8>,
}

impl CopyRows {
    /// Feeds a chunk; returns the complete rows it finished.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<Value>>, String> {
        self.pending.extend_from_slice(chunk);
        let Some(last_newline) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let complete: Vec<u8> = self.pending.drain(..=last_newline).collect();
        complete[..complete.len() - 1]
            .split(|b| *b == b'\n')
            .map(parse_line)
            .collect()
    }

    /// Whether an incomplete line is left over (the stream ended mid-row).
    pub fn has_partial_row(&self) -> bool {
        !self.pending.is_empty()
    }
}

fn parse_line(line: &[u8]) -> Result<Vec<Value>, String> {
    line.split(|b| *b == b'\t').map(parse_field).collect()
}

fn parse_field(field: &[u8]) -> Result<Value, String> {
    if field == b"\\N" {
        return Ok(Value::Null);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escaped = bytes.next().ok_or("a field ends with a lone backslash")?;
        out.push(match escaped {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            other => other,
        });
    }
    String::from_utf8(out)
        .map(Value::Text)
        .map_err(|e| format!("a value is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_across_chunks_with_escapes_and_nulls() {
        let mut rows = CopyRows::default();
        assert!(rows.push(b"1\ta\\tb\\\\c\t\\N\n2\tx").unwrap().len() == 1);
        assert!(rows.has_partial_row());
        let second = rows.push(b"y\\ny\t\\\\x00ff\n").unwrap();
        assert_eq!(
            second,
            vec![vec![
                Value::Text("2".into()),
                Value::Text("xy\ny".into()),
                Value::Text("\\x00ff".into())
            ]]
        );
        assert!(!rows.has_partial_row());
        let mut rows = CopyRows::default();
        let first = rows.push(b"1\ta\\tb\\\\c\t\\N\n").unwrap();
        assert_eq!(first[0][1], Value::Text("a\tb\\c".into()));
        assert_eq!(first[0][2], Value::Null);
    }
}
