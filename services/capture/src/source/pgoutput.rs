//! Decoder of pgoutput messages (protocol version 1) other than Begin, Commit and Message,
//! which the replication client already parses.
//!
//! Reference: PostgreSQL documentation, "Logical Replication Message Formats".

use crate::error::{CaptureError, Result};
use pg2bq_core::wire::Value;

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier.
    pub type_modifier: i32,
    /// Part of the replica identity key.
    pub key: bool,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgOutputMessage {
    /// Describes a table before its first change in a session and after each change of shape.
    Relation {
        /// Table OID.
        relation_id: u32,
        /// Schema name.
        namespace: String,
        /// Table name.
        name: String,
        /// REPLICA IDENTITY setting: `d`efault, `n`othing, `f`ull, `i`ndex.
        replica_identity: u8,
        /// The columns.
        columns: Vec<RelationColumn>,
    },
    /// Names a user-defined type before a Relation that uses it.
    Type {
        /// Type OID.
        type_oid: u32,
        /// Schema of the type.
        namespace: String,
        /// Name of the type.
        name: String,
    },
    /// A new row.
    Insert {
        /// Table OID.
        relation_id: u32,
        /// The row.
        new: Vec<Value>,
    },
    /// A changed row, with the old key (`K`) or old row (`O`) when PostgreSQL sends it.
    Update {
        /// Table OID.
        relation_id: u32,
        /// Old key or old row.
        old: Option<Vec<Value>>,
        /// The new row.
        new: Vec<Value>,
    },
    /// A removed row, by its old key or old row.
    Delete {
        /// Table OID.
        relation_id: u32,
        /// Old key or old row.
        old: Vec<Value>,
    },
    /// TRUNCATE of one or more tables.
    Truncate {
        /// Table OIDs.
        relation_ids: Vec<u32>,
        /// CASCADE (1) and RESTART IDENTITY (2) flags.
        options: u8,
    },
    /// The origin of a transaction replicated from elsewhere.
    Origin {
        /// Origin name.
        name: String,
    },
}

/// Decodes one pgoutput message.
pub fn decode(data: &[u8]) -> Result<PgOutputMessage> {
    let mut r = Reader { data, pos: 0 };
    let tag = r.u8()?;
    let message = match tag {
        b'R' => decode_relation(&mut r)?,
        b'Y' => PgOutputMessage::Type {
            type_oid: r.u32()?,
            namespace: r.cstring()?,
            name: r.cstring()?,
        },
        b'I' => {
            let relation_id = r.u32()?;
            r.expect(b'N')?;
            PgOutputMessage::Insert {
                relation_id,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation_id = r.u32()?;
            let mut old = None;
            let mut marker = r.u8()?;
            if marker == b'K' || marker == b'O' {
                old = Some(r.tuple()?);
                marker = r.u8()?;
            }
            if marker != b'N' {
                return Err(r.error(&format!("update: expected 'N', found {:?}", marker as char)));
            }
            PgOutputMessage::Update {
                relation_id,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation_id = r.u32()?;
            let marker = r.u8()?;
            if marker != b'K' && marker != b'O' {
                return Err(r.error(&format!(
                    "delete: expected 'K' or 'O', found {:?}",
                    marker as char
                )));
            }
            PgOutputMessage::Delete {
                relation_id,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let count = r.u32()?;
            let options = r.u8()?;
            let relation_ids = (0..count).map(|_| r.u32()).collect::<Result<_>>()?;
            PgOutputMessage::Truncate {
                relation_ids,
                options,
            }
        }
        b'O' => {
            let _origin_lsn = r.u64()?;
            PgOutputMessage::Origin { name: r.cstring()? }
        }
        other => return Err(r.error(&format!("unknown message type {:?}", other as char))),
    };
    Ok(message)
}

fn decode_relation(r: &mut Reader<'_>) -> Result<PgOutputMessage> {
    let relation_id = r.u32()?;
    let namespace = r.cstring()?;
    let name = r.cstring()?;
    let replica_identity = r.u8()?;
    let count = r.u16()?;
    let mut columns = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let flags = r.u8()?;
        columns.push(RelationColumn {
            name: r.cstring()?,
            type_oid: r.u32()?,
            type_modifier: r.u32()? as i32,
            key: flags & 1 == 1,
        });
    }
    Ok(PgOutputMessage::Relation {
        relation_id,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &str) -> CaptureError {
        CaptureError::Decode(format!("pgoutput at byte {}: {what}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return Err(self.error(&format!("message truncated (needed {n} more bytes)")));
        }
        let slice = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        let found = self.u8()?;
        if found == byte {
            Ok(())
        } else {
            Err(self.error(&format!(
                "expected {:?}, found {:?}",
                byte as char, found as char
            )))
        }
    }

    fn cstring(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.error("string without terminator"))?;
        let text = std::str::from_utf8(&rest[..end])
            .map_err(|e| self.error(&format!("string not UTF-8: {e}")))?;
        self.pos += end + 1;
        Ok(text.to_owned())
    }

    fn tuple(&mut self) -> Result<Vec<Value>> {
        let count = self.u16()?;
        let mut values = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let value = match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::UnchangedToast,
                b't' => {
                    let len = self.u32()? as usize;
                    // Text that is not UTF-8 (a SQL_ASCII database stores any bytes) travels
                    // as its bytes, and the writer sets its change aside: never a decoding
                    // error, which would stop capture at this change for good.
                    Value::from_bytes(self.take(len)?)
                }
                b'b' => {
                    return Err(self.error("binary values are not requested and not supported"));
                }
                other => {
                    return Err(
                        self.error(&format!("unknown tuple value kind {:?}", other as char))
                    );
                }
            };
            values.push(value);
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn text(out: &mut Vec<u8>, s: &str) {
        out.push(b't');
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn decodes_a_relation() {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16_385u32.to_be_bytes());
        cstr(&mut m, "public");
        cstr(&mut m, "orders");
        m.push(b'd');
        m.extend_from_slice(&2u16.to_be_bytes());
        m.push(1);
        cstr(&mut m, "id");
        m.extend_from_slice(&23u32.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
        m.push(0);
        cstr(&mut m, "amount");
        m.extend_from_slice(&1700u32.to_be_bytes());
        m.extend_from_slice(&((10 << 16 | 2) + 4i32).to_be_bytes());
        let PgOutputMessage::Relation {
            namespace,
            name,
            columns,
            ..
        } = decode(&m).unwrap()
        else {
            panic!("not a relation");
        };
        assert_eq!((namespace.as_str(), name.as_str()), ("public", "orders"));
        assert!(columns[0].key && !columns[1].key);
        assert_eq!(columns[1].type_modifier, (10 << 16 | 2) + 4);
    }

    #[test]
    fn decodes_an_update_with_old_key_null_and_unchanged_toast() {
        let mut m = vec![b'U'];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.push(b'K');
        m.extend_from_slice(&3u16.to_be_bytes());
        text(&mut m, "1");
        m.push(b'n');
        m.push(b'n');
        m.push(b'N');
        m.extend_from_slice(&3u16.to_be_bytes());
        text(&mut m, "2");
        m.push(b'n');
        m.push(b'u');
        let decoded = decode(&m).unwrap();
        assert_eq!(
            decoded,
            PgOutputMessage::Update {
                relation_id: 7,
                old: Some(vec![Value::Text("1".into()), Value::Null, Value::Null]),
                new: vec![Value::Text("2".into()), Value::Null, Value::UnchangedToast],
            }
        );
    }

    #[test]
    fn a_value_that_is_not_utf8_is_kept_as_bytes() {
        let mut m = vec![b'I'];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.push(b'N');
        m.extend_from_slice(&2u16.to_be_bytes());
        text(&mut m, "1");
        m.push(b't');
        m.extend_from_slice(&3u32.to_be_bytes());
        m.extend_from_slice(b"a\xff\xfe");
        assert_eq!(
            decode(&m).unwrap(),
            PgOutputMessage::Insert {
                relation_id: 7,
                new: vec![
                    Value::Text("1".into()),
                    Value::InvalidUtf8(b"a\xff\xfe".to_vec())
                ],
            }
        );
    }

    #[test]
    fn decodes_truncate_and_rejects_garbage() {
        let mut m = vec![b'T'];
        m.extend_from_slice(&2u32.to_be_bytes());
        m.push(1);
        m.extend_from_slice(&5u32.to_be_bytes());
        m.extend_from_slice(&6u32.to_be_bytes());
        assert_eq!(
            decode(&m).unwrap(),
            PgOutputMessage::Truncate {
                relation_ids: vec![5, 6],
                options: 1
            }
        );
        assert!(decode(b"I\x00\x00").is_err());
        assert!(decode(b"Z").is_err());
    }
}
