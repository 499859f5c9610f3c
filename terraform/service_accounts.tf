# One service account per component; each gets only the roles of iam.tf.

resource "google_service_account" "capture" {
  account_id   = "${var.name_prefix}-capture"
  display_name = "pg2bq capture"
  description  = "Runs capture: reads the replication password, publishes to the changes topic, connects to Cloud SQL."
}

resource "google_service_account" "writer" {
  account_id   = "${var.name_prefix}-writer"
  display_name = "pg2bq writer"
  description  = "Runs the writer: writes BigQuery tables of the pg2bq datasets and runs their MERGE queries."
}

resource "google_service_account" "push" {
  account_id   = "${var.name_prefix}-push"
  display_name = "pg2bq push identity"
  description  = "Identity of the Pub/Sub push subscription's OIDC token; may only invoke the writer."
}

resource "google_service_account" "merge" {
  count = local.staged_merge ? 1 : 0

  account_id   = "${var.name_prefix}-merge"
  display_name = "pg2bq MERGE scheduler"
  description  = "Identity of Cloud Scheduler's OIDC token for the writer's /merge; may only invoke the writer."
}
