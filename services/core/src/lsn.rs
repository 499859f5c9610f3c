//! PostgreSQL log sequence numbers (`X/Y` text form).

use crate::error::{CoreError, Result};
use std::fmt;

/// A PostgreSQL write-ahead log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses the text form PostgreSQL prints, e.g. `16/B374D848`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || CoreError::Position(format!("'{text}' is not an LSN of the form X/Y (hex)"));
        let (high, low) = text.trim().split_once('/').ok_or_else(bad)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_postgres_form() {
        let lsn = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("0/0").unwrap(), Lsn(0));
    }

    #[test]
    fn rejects_malformed_text() {
        assert!(Lsn::parse("16B374D848").is_err());
        assert!(Lsn::parse("x/1").is_err());
        assert!(Lsn::parse("1/100000000").is_err());
    }
}
