//! What pg2bq records about a table in BigQuery, once, in the description of its staging table
//! (`<table>__changes`): which source table it mirrors, how (a mirror merged by key, or an
//! append-only log), its key columns, and the columns that have arrived as unchanged TOAST
//! values. Any writer instance reads it to merge a table it never wrote, and compares each
//! batch's key with it: the key is fixed when the table is created, not re-derived from the
//! latest batch.

use serde::{Deserialize, Serialize};

/// How a staging table is folded into its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// A mirror: the newest change per key is merged into the target table.
    Mirror,
    /// A log: every change is inserted into the target table once, by its sequence number.
    Log,
}

/// The record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Mirror or log.
    pub kind: TableKind,
    /// `schema.table` in the source.
    pub source: String,
    /// BigQuery names of the key columns (empty for a log of a table without a key).
    pub keys: Vec<String>,
    /// BigQuery names of the columns that have arrived as unchanged TOAST values: the MERGE
    /// takes their values from older changes of the same key.
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// Deleted rows stay in the mirror, marked (`_pg2bq_is_deleted`, `_pg2bq_deleted_at`),
    /// instead of being removed: chosen when the tables are made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft_deletes: bool,
}

/// The generation of a source table's BigQuery tables (see [`pg2bq_core::wire::ChangeBatch`]'s
/// `generation`), recorded in the description of its staging table next to the [`TableMeta`]:
/// the staging table outlives the generations (it is made again, empty, at each), and marks a
/// dropped source table. No mark: generation 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationMark {
    /// The generation.
    pub generation: u64,
    /// The source table is gone: its target table was dropped, nothing more is written.
    #[serde(default)]
    pub dropped: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct Described {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pg2bq: Option<TableMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pg2bq_generation: Option<GenerationMark>,
}

/// A staging table's description holding `meta` and `mark`.
pub fn description(meta: Option<&TableMeta>, mark: Option<GenerationMark>) -> String {
    serde_json::to_string(&Described {
        pg2bq: meta.cloned(),
        pg2bq_generation: mark,
    })
    .expect("table metadata serialises")
}

/// The generation mark in a staging table's description, if it holds one.
pub fn generation_mark(description: &str) -> Option<GenerationMark> {
    serde_json::from_str::<Described>(description)
        .ok()
        .and_then(|d| d.pg2bq_generation)
}

impl TableMeta {
    /// The table description that holds the record (and no generation mark).
    pub fn to_description(&self) -> String {
        description(Some(self), None)
    }

    /// The record in a table description, if it holds one.
    pub fn from_description(description: &str) -> Option<Self> {
        serde_json::from_str::<Described>(description)
            .ok()
            .and_then(|d| d.pg2bq)
    }

    /// Whether every column of `columns` is recorded as arriving unchanged.
    pub fn covers_unchanged(&self, columns: &[String]) -> bool {
        columns.iter().all(|c| self.unchanged.contains(c))
    }

    /// The record with `columns` added to the unchanged ones.
    pub fn with_unchanged(&self, columns: &[String]) -> Self {
        let mut next = self.clone();
        for column in columns {
            if !next.unchanged.contains(column) {
                next.unchanged.push(column.clone());
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_description_and_ignores_other_descriptions() {
        let meta = TableMeta {
            kind: TableKind::Mirror,
            source: "public.t".into(),
            keys: vec!["id".into()],
            unchanged: vec![],
            soft_deletes: false,
        };
        let text = meta.to_description();
        assert_eq!(
            text,
            r#"{"pg2bq":{"kind":"mirror","source":"public.t","keys":["id"],"unchanged":[]}}"#
        );
        assert_eq!(TableMeta::from_description(&text), Some(meta.clone()));
        assert_eq!(TableMeta::from_description("a user's words"), None);
        let soft = TableMeta {
            soft_deletes: true,
            ..meta.clone()
        };
        assert!(soft.to_description().contains(r#""soft_deletes":true"#));
        assert_eq!(
            TableMeta::from_description(&soft.to_description()),
            Some(soft)
        );
        let mark = GenerationMark {
            generation: 3,
            dropped: false,
        };
        let both = description(Some(&meta), Some(mark));
        assert_eq!(TableMeta::from_description(&both), Some(meta.clone()));
        assert_eq!(generation_mark(&both), Some(mark));
        assert_eq!(generation_mark(&text), None);
        assert_eq!(
            TableMeta::from_description(&description(None, Some(mark))),
            None
        );
        let more = meta.with_unchanged(&["body".into(), "body".into()]);
        assert_eq!(more.unchanged, vec!["body".to_owned()]);
        assert!(
            more.covers_unchanged(&["body".into()]) && !meta.covers_unchanged(&["body".into()])
        );
    }
}
