//! Protected columns (`PG2BQ_PROTECT`, see [`pg2bq_core::protect`]) in a comparison: STRING
//! in BigQuery, holding hashes or masks that PostgreSQL cannot compute without the key. The
//! full comparison protects the source's values in Rust ([`super::full`]) and compares them
//! exactly; checksums and key hashes take them only as NULL or not.

use super::sql::{Dialect, Shape, column_ref, value};
use pg2bq_core::bq_types::BqType;
use pg2bq_core::protect::Protection;

/// How a protected column enters a checksum.
pub const COARSE_PROTECTED: &str =
    "checksummed only as NULL or not: a changed hash shows only in a full comparison";

impl Shape {
    /// The shape with the columns `protection` protects: STRING in BigQuery, compared in full
    /// by protecting the source's values, and in checksums and key hashes only as NULL or not.
    pub fn protected(mut self, protection: &Protection) -> Self {
        self.protection = protection.table(&self.table.id, &self.table.columns);
        for (i, bq_type) in self.types.iter_mut().enumerate() {
            if self
                .protection
                .as_ref()
                .is_some_and(|p| p.method(i).is_some())
            {
                *bq_type = BqType::String;
            }
        }
        self
    }

    /// Whether the column at `position` is protected.
    pub fn is_protected(&self, position: usize) -> bool {
        self.protection
            .as_ref()
            .is_some_and(|p| p.method(position).is_some())
    }

    /// The canonical text of the column at `position` as checksums and key hashes take it: a
    /// protected column as NULL or not.
    pub fn canonical(&self, dialect: Dialect, position: usize) -> String {
        let c = column_ref(dialect, self, position);
        if self.is_protected(position) {
            return format!("CASE WHEN {c} IS NULL THEN NULL ELSE 'protected' END");
        }
        value(
            dialect,
            &c,
            &self.table.columns[position].pg_type,
            self.types[position],
        )
    }
}
