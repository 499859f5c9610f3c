//! The freshness probe: a one-row table in pg2bq's state schema.
//!
//! `pg2bq validate --freshness` creates it, adds it to the publication and updates its row, then
//! times how long the change takes to reach BigQuery. Unlike pg2bq's other state tables it is
//! replicated: capture keeps it in the publication whenever it exists, whatever the include
//! patterns say.

use crate::wire::TableId;

/// Name of the probe table in the state schema.
pub const FRESHNESS_PROBE_TABLE: &str = "freshness_probe";

/// The probe table of a state schema.
pub fn freshness_probe(state_schema: &str) -> TableId {
    TableId {
        schema: state_schema.to_owned(),
        table: FRESHNESS_PROBE_TABLE.to_owned(),
    }
}
