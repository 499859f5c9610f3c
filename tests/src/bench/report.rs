//! The benchmark summary: figures, their targets, a printed table and `summary.json`.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// A target a figure must meet.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At least this value.
    AtLeast(f64),
    /// At most this value.
    AtMost(f64),
}

impl Target {
    fn passes(self, value: f64) -> bool {
        match self {
            Target::AtLeast(t) => value >= t,
            Target::AtMost(t) => value <= t,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(t) => format!(">= {}", human(t)),
            Target::AtMost(t) => format!("<= {}", human(t)),
        }
    }
}

/// The targets of issue 8 on a 2-core machine, and issue 16's: a MERGE that takes no longer
/// with a 20 times longer change history (within 1.5 times).
pub const TARGETS: &[(&str, Target)] = &[
    ("capture_vs_pg_recvlogical", Target::AtLeast(0.8)),
    ("backfill_vs_copy", Target::AtLeast(0.5)),
    ("writer_rows_per_s_per_core", Target::AtLeast(200_000.0)),
    ("freshness_p99_ms", Target::AtMost(3000.0)),
    ("capture_peak_rss_mb", Target::AtMost(256.0)),
    ("merge_growth_ratio", Target::AtMost(1.5)),
];

/// Figures of one run, by key, with notes on how they were taken.
#[derive(Debug, Default)]
pub struct Summary {
    figures: BTreeMap<String, f64>,
    notes: BTreeMap<String, String>,
    conditions: Map<String, Value>,
}

impl Summary {
    /// Records a figure.
    pub fn set(&mut self, key: &str, value: f64) {
        self.figures.insert(key.to_owned(), value);
    }

    /// A recorded figure.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.figures.get(key).copied()
    }

    /// Records how a figure was taken.
    pub fn note(&mut self, key: &str, text: impl Into<String>) {
        self.notes.insert(key.to_owned(), text.into());
    }

    /// Records a condition of the run (load, cores, sizes).
    pub fn condition(&mut self, key: &str, value: Value) {
        self.conditions.insert(key.to_owned(), value);
    }

    /// Keeps figures of an earlier summary that this run did not measure (a partial run).
    pub fn merge_earlier(&mut self, earlier: &Value) {
        if let Some(figures) = earlier.as_object() {
            for (key, value) in figures {
                if let Some(v) = value.as_f64() {
                    self.figures.entry(key.clone()).or_insert(v);
                }
            }
        }
        if let Some(notes) = earlier["notes"].as_object() {
            for (key, value) in notes {
                if let Some(v) = value.as_str() {
                    self.notes
                        .entry(key.clone())
                        .or_insert_with(|| v.to_owned());
                }
            }
        }
    }

    /// The summary as JSON: every figure at the top level, then `targets`, `conditions`, `notes`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (key, value) in &self.figures {
            out.insert(key.clone(), json!(round(*value)));
        }
        let targets: Vec<Value> = TARGETS
            .iter()
            .map(|(key, target)| {
                let value = self.get(key);
                json!({
                    "metric": key,
                    "target": target.describe(),
                    "value": value.map(round),
                    "pass": value.map(|v| target.passes(v)),
                })
            })
            .collect();
        out.insert("targets".into(), Value::Array(targets));
        out.insert("conditions".into(), Value::Object(self.conditions.clone()));
        out.insert("notes".into(), json!(self.notes));
        Value::Object(out)
    }

    /// Writes `summary.json` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(&self.to_json())? + "\n";
        std::fs::write(dir.join("summary.json"), text)
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let width = self
            .figures
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(40);
        let mut out = format!(
            "{:<width$} {:>14}  {:<12} {}\n",
            "figure", "value", "target", ""
        );
        out.push_str(&format!("{}\n", "-".repeat(width + 34)));
        for (key, value) in &self.figures {
            let target = TARGETS.iter().find(|(k, _)| k == key).map(|(_, t)| *t);
            let (wanted, verdict) = match target {
                Some(t) if t.passes(*value) => (t.describe(), "pass"),
                Some(t) => (t.describe(), "FAIL"),
                None => (String::new(), ""),
            };
            out.push_str(&format!(
                "{key:<width$} {:>14}  {wanted:<12} {verdict}\n",
                human(*value)
            ));
        }
        out
    }
}

fn round(value: f64) -> f64 {
    if value.abs() >= 100.0 {
        value.round()
    } else {
        (value * 1000.0).round() / 1000.0
    }
}

fn human(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let whole = value.round() as i64;
        let digits = whole.abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if whole < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_pass_and_fail_in_json_and_table() {
        let mut s = Summary::default();
        s.set("capture_vs_pg_recvlogical", 0.9);
        s.set("capture_peak_rss_mb", 300.0);
        s.set("copy_rows_per_s", 2_120_000.4);
        let json = s.to_json();
        assert_eq!(json["copy_rows_per_s"], json!(2_120_000.0));
        assert_eq!(json["targets"][0]["pass"], json!(true));
        assert_eq!(json["targets"][4]["pass"], json!(false));
        assert_eq!(json["targets"][1]["pass"], Value::Null);
        let table = s.table();
        assert!(table.contains("2,120,000"), "{table}");
        assert!(table.contains("FAIL"), "{table}");
    }
}
