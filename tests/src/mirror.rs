//! What a test reads of a mirror table's definition in BigQuery.

use crate::stack::Stack;
use pg2bq_core::bq_naming::BqTableName;

/// The data columns of the BigQuery table `dataset.table`, in order, pg2bq's `_pg2bq_*`
/// metadata columns left out; `None` if the table does not exist.
pub async fn mirror_columns(stack: &Stack, dataset: &str, table: &str) -> Option<Vec<String>> {
    let name = BqTableName {
        dataset: dataset.to_owned(),
        table: table.to_owned(),
    };
    let fields = stack
        .bigquery()
        .table_schema(&name)
        .await
        .expect("table schema")?;
    Some(
        fields
            .into_iter()
            .map(|f| f.name)
            .filter(|n| !n.starts_with("_pg2bq_"))
            .collect(),
    )
}
