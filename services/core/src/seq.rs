//! Change sequence numbers: the total order of all changes of a source.
//!
//! `seq` = `<commit LSN as 16 hex digits>/<ordinal in the transaction as 16 hex digits>`.
//! Fixed width upper-case hex makes the text order equal to the numeric order, and BigQuery's
//! `_CHANGE_SEQUENCE_NUMBER` accepts exactly this form. Backfilled rows use ordinal 0 with the
//! LSN of the snapshot's consistent point; streamed changes use ordinals from 1.

use crate::error::{CoreError, Result};
use crate::lsn::Lsn;
use std::fmt;

/// Position of one change in the source's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq {
    /// Commit LSN of the transaction (or the consistent point of a snapshot).
    pub commit_lsn: Lsn,
    /// Position of the change within its transaction, from 1; 0 for snapshot rows.
    pub ordinal: u64,
}

impl Seq {
    /// The sequence number of a change.
    pub fn new(commit_lsn: Lsn, ordinal: u64) -> Self {
        Seq {
            commit_lsn,
            ordinal,
        }
    }

    /// Parses the `16 hex/16 hex` form.
    pub fn parse(text: &str) -> Result<Self> {
        let bad =
            || CoreError::Position(format!("'{text}' is not a sequence number (16 hex/16 hex)"));
        let (lsn, ordinal) = text.split_once('/').ok_or_else(bad)?;
        if lsn.len() != 16 || ordinal.len() != 16 {
            return Err(bad());
        }
        let lsn = u64::from_str_radix(lsn, 16).map_err(|_| bad())?;
        let ordinal = u64::from_str_radix(ordinal, 16).map_err(|_| bad())?;
        Ok(Seq::new(Lsn(lsn), ordinal))
    }

    /// The text form in a fixed buffer, without the formatting machinery: every change carries
    /// one, so this is on the hot paths of capture and the writer.
    pub fn to_text(&self) -> SeqText {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [b'/'; SEQ_TEXT_LEN];
        for (half, value) in [(0, self.commit_lsn.0), (17, self.ordinal)] {
            for i in 0..16 {
                out[half + i] = HEX[((value >> (60 - 4 * i)) & 0xF) as usize];
            }
        }
        SeqText(out)
    }
}

/// Length of a sequence number's text form.
const SEQ_TEXT_LEN: usize = 33;

/// A sequence number's text form, `16 hex/16 hex`.
#[derive(Debug, Clone, Copy)]
pub struct SeqText([u8; SEQ_TEXT_LEN]);

impl SeqText {
    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits and a slash")
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
    fn round_trips() {
        let s = Seq::new(Lsn(0x16_B374_D848), 42);
        assert_eq!(Seq::parse(&s.to_string()).unwrap(), s);
        assert!(Seq::parse("1/2").is_err());
    }
}
