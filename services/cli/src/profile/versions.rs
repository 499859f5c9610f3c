//! Checks whose answer depends on the server's version and role: a standby source (refused),
//! whether the stream survives a failover (failover slots, PostgreSQL 17+), and the generated
//! columns left out of the mirror (all before PostgreSQL 18, virtual ones from 18 on).

use super::{Check, Outcome, check};
use pg2bq_source::catalog::SourceTable;
use pg2bq_source::catalog::generated::left_out;
use pg2bq_source::server::{FailoverFacts, StandbyProblem};

/// The name of the failover line.
pub const FAILOVER: &str = "failover";

/// A standby cannot be a source: the FAIL line, with why and the fix.
pub fn standby_check(problem: &StandbyProblem) -> Check {
    check(
        "standby",
        Outcome::Fail,
        problem.detail.clone(),
        Some(problem.fix.clone()),
    )
}

/// Whether the stream of slot `slot` survives a failover to a standby.
pub fn failover_check(facts: &FailoverFacts, slot: &str) -> Check {
    if facts.version_num < pg2bq_source::server::FAILOVER_SLOTS_FROM {
        return check(
            FAILOVER,
            Outcome::Warn,
            "no: the stream does not survive a failover: slots are not synchronized to standbys \
             before PostgreSQL 17 (after a failover the slot is lost; capture detects the lost \
             slot and stops with the way to start over, which copies every table again)"
                .into(),
            Some(
                "upgrade to PostgreSQL 17 or later: capture then creates its slot as a failover \
                 slot, which standbys set up for it keep through a failover"
                    .into(),
            ),
        );
    }
    let standby_settings = "on each standby that may be promoted: sync_replication_slots = on, \
         hot_standby_feedback = on, primary_slot_name set and dbname in primary_conninfo \
         (pg2bq cannot read a standby's settings from the primary; on Cloud SQL, check that \
         the replica synchronizes logical failover slots)";
    let slot_state = match facts.slot_failover {
        Some(false) => {
            return check(
                FAILOVER,
                Outcome::Warn,
                format!(
                    "no: slot {slot} is not a failover slot (pg_replication_slots.failover is \
                     false; it was created before PostgreSQL 17 or by an older pg2bq): after a \
                     failover it is lost"
                ),
                Some(format!(
                    "restart capture: on PostgreSQL 17+ it makes its slot a failover slot when no \
                     one streams from it (or, with capture stopped, run ALTER_REPLICATION_SLOT \
                     \"{slot}\" (FAILOVER true) on a replication connection); then {standby_settings}"
                )),
            );
        }
        Some(true) => format!("slot {slot} is a failover slot"),
        None => format!("slot {slot} does not exist yet; capture creates it as a failover slot"),
    };
    if facts.synchronized_standby_slots.trim().is_empty() {
        return check(
            FAILOVER,
            Outcome::Warn,
            format!(
                "not safely: {slot_state}, but synchronized_standby_slots is empty on this \
                 primary, so capture may read changes a standby has not received: after a \
                 failover to it, BigQuery may hold changes the new primary does not have, or \
                 the synchronized slot may not be ready"
            ),
            Some(format!(
                "on the primary, set synchronized_standby_slots to the physical slots of the \
                 standbys that may be promoted; {standby_settings}"
            )),
        );
    }
    check(
        FAILOVER,
        Outcome::Pass,
        format!(
            "yes, if the standbys synchronize it: {slot_state}, and synchronized_standby_slots = \
             '{}'; check {standby_settings}",
            facts.synchronized_standby_slots
        ),
        None,
    )
}

/// One WARN line per table with generated columns left out of the mirror on a server of
/// `version_num`, naming them, why and the fix.
pub fn generated_checks(tables: &[SourceTable], version_num: i32) -> Vec<Check> {
    let note = left_out(version_num);
    tables
        .iter()
        .filter(|t| !t.generated.is_empty())
        .map(|t| {
            check(
                &t.id.to_string(),
                Outcome::Warn,
                format!(
                    "generated columns left out of the mirror: {} ({})",
                    t.generated.join(", "),
                    note.why
                ),
                Some(note.fix.to_owned()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version_num: i32, slot_failover: Option<bool>, standby_slots: &str) -> FailoverFacts {
        FailoverFacts {
            version_num,
            slot_failover,
            synchronized_standby_slots: standby_slots.into(),
        }
    }

    #[test]
    fn before_17_the_stream_does_not_survive_a_failover() {
        let c = failover_check(&facts(160_004, None, ""), "s");
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(
            c.detail
                .starts_with("no: the stream does not survive a failover")
        );
        assert!(c.fix.unwrap().contains("upgrade to PostgreSQL 17"));
    }

    #[test]
    fn on_17_a_slot_that_is_not_a_failover_slot_is_named_with_the_fix() {
        let c = failover_check(&facts(170_002, Some(false), "sb"), "s");
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(c.detail.contains("slot s is not a failover slot"));
        assert!(
            c.fix
                .unwrap()
                .contains("ALTER_REPLICATION_SLOT \"s\" (FAILOVER true)")
        );
    }

    #[test]
    fn on_17_the_primary_side_settings_decide_between_warn_and_pass() {
        let c = failover_check(&facts(170_002, None, ""), "s");
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(c.detail.contains("capture creates it as a failover slot"));
        assert!(c.fix.unwrap().contains("synchronized_standby_slots"));
        let c = failover_check(&facts(180_000, Some(true), "sb1"), "s");
        assert_eq!(c.outcome, Outcome::Pass);
        assert!(c.detail.contains("'sb1'") && c.detail.contains("sync_replication_slots = on"));
    }
}
