# BigQuery datasets of the replicated schemas. The writer creates the tables (and the datasets of
# schemas not listed here) itself, from the columns each message carries.

resource "google_bigquery_dataset" "target" {
  for_each = toset(local.datasets)

  dataset_id                 = each.value
  location                   = var.bq_location
  description                = "pg2bq: tables replicated from PostgreSQL ${var.pg_database} (mirror tables and their __changes tables)."
  delete_contents_on_destroy = var.bq_delete_contents_on_destroy
  labels                     = { component = "target" }

  dynamic "default_encryption_configuration" {
    for_each = var.bq_kms_key_name == null ? [] : [var.bq_kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
}
