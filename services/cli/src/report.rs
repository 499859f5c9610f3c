//! Printing validation reports: a readable table, or JSON for scripts.

use crate::validate::TableReport;

/// Prints the reports as an aligned table, with examples of differing rows under each table.
pub fn print_table(reports: &[TableReport]) {
    let width = reports
        .iter()
        .map(|r| r.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$}  {:>11}  {:>13}  {:>7}  {:>5}  RESULT",
        "TABLE", "SOURCE ROWS", "BIGQUERY ROWS", "MISSING", "EXTRA"
    );
    for r in reports {
        let bigquery_rows = r.bigquery_rows.map_or("-".to_owned(), |n| n.to_string());
        let result = if r.matches() { "match" } else { "MISMATCH" };
        println!(
            "{:<width$}  {:>11}  {:>13}  {:>7}  {:>5}  {result}",
            r.table, r.source_rows, bigquery_rows, r.missing, r.extra
        );
        if let Some(error) = &r.error {
            println!("    {error}");
        }
        for example in &r.examples {
            println!("    {example}");
        }
    }
}

/// Prints the reports as one JSON document.
pub fn print_json(reports: &[TableReport]) {
    let all_match = reports.iter().all(TableReport::matches);
    let document = serde_json::json!({"match": all_match, "tables": reports});
    println!(
        "{}",
        serde_json::to_string_pretty(&document).expect("reports serialise")
    );
}
