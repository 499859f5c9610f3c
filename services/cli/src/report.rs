//! Printing validation reports: a readable table, or JSON for scripts.

use crate::validate::freshness::FreshnessReport;
use crate::validate::{Method, TableReport};

/// Renders the reports as an aligned table, with notes and examples of differing rows under
/// each table, and the freshness figure if measured.
pub fn render_table(reports: &[TableReport], freshness: Option<&FreshnessReport>) -> String {
    let mut out = String::new();
    if !reports.is_empty() {
        let width = reports
            .iter()
            .map(|r| r.table.len())
            .max()
            .unwrap_or(5)
            .max(5);
        out.push_str(&format!(
            "{:<width$}  {:<8}  {:>11}  {:>13}  {:>7}  {:>5}  RESULT\n",
            "TABLE", "METHOD", "SOURCE ROWS", "BIGQUERY ROWS", "MISSING", "EXTRA"
        ));
        for r in reports {
            out.push_str(&row(r, width));
        }
    }
    if let Some(f) = freshness {
        out.push_str(&format!(
            "freshness: {} ms (a change to {} reached {}{})\n",
            f.freshness_ms,
            f.table,
            f.bigquery_table,
            if f.set_up {
                "; the probe was set up by this run"
            } else {
                ""
            }
        ));
    }
    out
}

fn row(r: &TableReport, width: usize) -> String {
    let bigquery_rows = r.bigquery_rows.map_or("-".to_owned(), |n| n.to_string());
    let result = if r.matches() { "match" } else { "MISMATCH" };
    let method = match r.method {
        Method::Full => "full",
        Method::Checksum => "checksum",
    };
    // Differing checksums whose rows were not listed: how many rows differ is unknown.
    let unlisted = r
        .checksum
        .as_ref()
        .is_some_and(|c| !c.matches() && !c.rows_listed);
    let (missing, extra) = if unlisted {
        ("?".to_owned(), "?".to_owned())
    } else {
        (r.missing.to_string(), r.extra.to_string())
    };
    let mut out = format!(
        "{:<width$}  {method:<8}  {:>11}  {:>13}  {missing:>7}  {extra:>5}  {result}\n",
        r.table, r.source_rows, bigquery_rows
    );
    if r.different > 0 {
        out.push_str(&format!(
            "    {} of those rows are in both with other values (the same key)\n",
            r.different
        ));
    }
    if let Some(percent) = r.sample_percent {
        out.push_str(&format!(
            "    sampled: {percent}% of the keys, chosen alike on both sides\n"
        ));
    }
    if let Some(c) = r.checksum.as_ref().filter(|c| !c.matches()) {
        out.push_str(&format!(
            "    checksums differ: source {}, BigQuery {} ({} of {} key buckets differ{})\n",
            c.source,
            c.bigquery,
            c.differing_buckets,
            crate::validate::sql::BUCKETS,
            if c.rows_listed {
                ""
            } else {
                "; too many rows to list them, see --full-compare-max-rows"
            }
        ));
    }
    for column in &r.coarse_columns {
        out.push_str(&format!("    coarse: {column}\n"));
    }
    if !r.adjusted.is_empty() {
        out.push_str(
            "    adjusted values (written by a documented rule, not differences; see --json):\n",
        );
        // One line per column, its rules in the report's order.
        let mut lines: Vec<(&str, Vec<String>)> = Vec::new();
        for a in &r.adjusted {
            let rule = format!("{} {}", a.rule, a.values);
            match lines.iter_mut().find(|(column, _)| *column == a.column) {
                Some((_, rules)) => rules.push(rule),
                None => lines.push((&a.column, vec![rule])),
            }
        }
        for (column, rules) in lines {
            out.push_str(&format!("      {column}: {}\n", rules.join(", ")));
        }
    }
    if let Some(error) = &r.error {
        out.push_str(&format!("    {error}\n"));
    }
    for example in &r.examples {
        out.push_str(&format!("    {example}\n"));
    }
    out
}

/// Renders the reports (and the freshness figure) as one JSON document.
pub fn render_json(reports: &[TableReport], freshness: Option<&FreshnessReport>) -> String {
    let all_match = reports.iter().all(TableReport::matches);
    let mut document = serde_json::json!({"match": all_match, "tables": reports});
    if let Some(f) = freshness {
        document["freshness"] = serde_json::to_value(f).expect("freshness serialises");
    }
    serde_json::to_string_pretty(&document).expect("reports serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::AdjustedValues;
    use crate::validate::checksum::ChecksumSummary;
    use pg2bq_core::bq_values::Adjustment;

    fn report() -> TableReport {
        TableReport {
            table: "shop.orders".into(),
            bigquery_table: "shop.orders".into(),
            method: Method::Checksum,
            sample_percent: Some(10.0),
            source_rows: 100,
            bigquery_rows: Some(100),
            missing: 0,
            extra: 0,
            different: 0,
            checksum: Some(ChecksumSummary {
                source: "0a".into(),
                bigquery: "0b".into(),
                differing_buckets: 1,
                rows_listed: false,
            }),
            coarse_columns: vec!["j: jsonb as JSON, coarse".into()],
            examples: vec![],
            adjusted: vec![
                AdjustedValues {
                    column: "shipped".into(),
                    rule: Adjustment::InfinityToMax,
                    values: 3,
                    description: Adjustment::InfinityToMax.description(),
                },
                AdjustedValues {
                    column: "shipped".into(),
                    rule: Adjustment::ClampedToMin,
                    values: 1,
                    description: Adjustment::ClampedToMin.description(),
                },
            ],
            error: None,
        }
    }

    #[test]
    fn text_says_how_a_table_was_compared_and_what_is_unknown() {
        let freshness = FreshnessReport {
            table: "pg2bq.freshness_probe".into(),
            bigquery_table: "pg2bq.freshness_probe".into(),
            freshness_ms: 1234,
            set_up: false,
        };
        let text = render_table(&[report()], Some(&freshness));
        assert!(
            text.contains(
                "shop.orders  checksum          100            100        ?      ?  MISMATCH"
            ),
            "{text}"
        );
        for line in [
            "    sampled: 10% of the keys",
            "    checksums differ: source 0a, BigQuery 0b (1 of 256 key buckets differ; too many rows",
            "    coarse: j: jsonb as JSON, coarse",
            "    adjusted values (written by a documented rule, not differences; see --json):\n      shipped: infinity_to_max 3, clamped_to_min 1\n",
            "freshness: 1234 ms (a change to pg2bq.freshness_probe reached pg2bq.freshness_probe)",
        ] {
            assert!(text.contains(line), "'{line}' in:\n{text}");
        }
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&[report()], Some(&freshness))).unwrap();
        assert_eq!(json["match"], false);
        assert_eq!(json["freshness"]["freshness_ms"], 1234);
        assert_eq!(json["tables"][0]["method"], "checksum");
        assert_eq!(
            json["tables"][0]["adjusted"][0],
            serde_json::json!({"column": "shipped", "rule": "infinity_to_max", "values": 3,
                "description": "infinity written as BigQuery's largest value"})
        );
    }
}
