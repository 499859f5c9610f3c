//! Change sequence numbers: the total order of all changes of a source.
//!
//! A streamed change: `<commit LSN>/<ordinal in the transaction, from 1>`. A backfilled row:
//! `<consistent point LSN>/0000000000000000/<first block of its range>/<row in the range>`. Every
//! section is 16 upper-case hex digits, so the text order equals the numeric order, and BigQuery's
//! `_CHANGE_SEQUENCE_NUMBER` (up to four sections) accepts both forms.
//!
//! Every change committed after a snapshot has a larger commit LSN than its consistent point, so
//! it wins over the snapshot's rows; the last two sections only tell the rows of one snapshot
//! apart (a table without a key, or an append-only log, writes each row once by its sequence
//! number) and let a later snapshot of the same range supersede an earlier one.

use crate::error::{CoreError, Result};
use crate::lsn::Lsn;
use std::fmt;

/// Where a backfilled row was read: its range (by first block) and its position in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotRow {
    /// First block of the range the row was copied with.
    pub range: u64,
    /// Position of the row in that range's copy, from 0.
    pub row: u64,
}

/// Position of one change in the source's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq {
    /// Commit LSN of the transaction (or the consistent point of a snapshot).
    pub commit_lsn: Lsn,
    /// Position of the change within its transaction, from 1; 0 for snapshot rows.
    pub ordinal: u64,
    /// For a backfilled row, where it was read.
    pub snapshot_row: Option<SnapshotRow>,
}

impl Seq {
    /// The sequence number of a change (or of a snapshot, with ordinal 0).
    pub fn new(commit_lsn: Lsn, ordinal: u64) -> Self {
        Seq {
            commit_lsn,
            ordinal,
            snapshot_row: None,
        }
    }

    /// The sequence number of row `row` of the range starting at block `range`, read from the
    /// snapshot whose consistent point is `consistent_point`.
    pub fn snapshot_row(consistent_point: Lsn, range: u64, row: u64) -> Self {
        Seq {
            commit_lsn: consistent_point,
            ordinal: 0,
            snapshot_row: Some(SnapshotRow { range, row }),
        }
    }

    /// Parses the two- or four-section form.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            CoreError::Position(format!(
                "'{text}' is not a sequence number (16 hex/16 hex, or four such sections)"
            ))
        };
        let sections: Vec<&str> = text.split('/').collect();
        if !matches!(sections.len(), 2 | 4) || sections.iter().any(|s| s.len() != 16) {
            return Err(bad());
        }
        let numbers = sections
            .iter()
            .map(|s| u64::from_str_radix(s, 16).map_err(|_| bad()))
            .collect::<Result<Vec<u64>>>()?;
        let snapshot_row = match numbers[..] {
            [_, 0, range, row] => Some(SnapshotRow { range, row }),
            [_, _, _, _] => return Err(bad()),
            _ => None,
        };
        Ok(Seq {
            commit_lsn: Lsn(numbers[0]),
            ordinal: numbers[1],
            snapshot_row,
        })
    }

    /// The text form in a fixed buffer, without the formatting machinery: every change carries
    /// one, so this is on the hot paths of capture and the writer.
    pub fn to_text(&self) -> SeqText {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [b'/'; SEQ_TEXT_MAX];
        let (lsn, ordinal) = (self.commit_lsn.0, self.ordinal);
        let (sections, count) = match self.snapshot_row {
            Some(at) => ([lsn, ordinal, at.range, at.row], 4),
            None => ([lsn, ordinal, 0, 0], 2),
        };
        for (n, value) in sections[..count].iter().enumerate() {
            let start = n * 17;
            for (i, digit) in out[start..start + 16].iter_mut().enumerate() {
                *digit = HEX[((value >> (60 - 4 * i)) & 0xF) as usize];
            }
        }
        SeqText {
            bytes: out,
            len: count * 17 - 1,
        }
    }
}

/// Length of the longest text form (four sections).
const SEQ_TEXT_MAX: usize = 67;

/// A sequence number's text form.
#[derive(Debug, Clone, Copy)]
pub struct SeqText {
    bytes: [u8; SEQ_TEXT_MAX],
    len: usize,
}

impl SeqText {
    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("hex digits and slashes")
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_text().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_order_equals_numeric_order() {
        let a = Seq::new(Lsn(0x9), 0xF);
        let b = Seq::new(Lsn(0x10), 1);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string(), "0000000000000009/000000000000000F");
        let max = Seq::new(Lsn(u64::MAX), 0xABCD_EF01_2345_6789);
        assert_eq!(max.to_string(), "FFFFFFFFFFFFFFFF/ABCDEF0123456789");
    }

    #[test]
    fn snapshot_rows_sort_after_their_snapshot_and_before_any_later_change() {
        let snapshot = Seq::new(Lsn(0x20), 0);
        let row = Seq::snapshot_row(Lsn(0x20), 0x1000, 7);
        let later = Seq::new(Lsn(0x20), 1);
        assert_eq!(
            row.to_string(),
            "0000000000000020/0000000000000000/0000000000001000/0000000000000007"
        );
        for (x, y) in [(snapshot, row), (row, later)] {
            assert!(x < y);
            assert!(x.to_string() < y.to_string());
        }
        let next_row = Seq::snapshot_row(Lsn(0x20), 0x1000, 8);
        assert!(row.to_string() < next_row.to_string());
    }

    #[test]
    fn round_trips() {
        let s = Seq::new(Lsn(0x16_B374_D848), 42);
        assert_eq!(Seq::parse(&s.to_string()).unwrap(), s);
        let r = Seq::snapshot_row(Lsn(0x16_B374_D848), 4096, 12);
        assert_eq!(Seq::parse(&r.to_string()).unwrap(), r);
        assert!(Seq::parse("1/2").is_err());
        assert!(
            Seq::parse("0000000000000001/0000000000000002/0000000000000003/0000000000000004")
                .is_err(),
            "four sections only for snapshot rows (ordinal 0)"
        );
        assert!(Seq::parse("0000000000000001/0000000000000000/0000000000000003").is_err());
    }
}
