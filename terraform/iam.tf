# Least privilege: bindings on the resource wherever the resource has an IAM policy.

# --- capture ---------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "capture_publisher" {
  for_each = local.streams

  topic  = google_pubsub_topic.changes[each.key].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.capture.member
}

resource "google_secret_manager_secret_iam_member" "capture_password" {
  secret_id = google_secret_manager_secret.pg_password.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.capture.member
}

# capture's Auth Proxy sidecar connects as capture. Cloud SQL instances have no IAM policy of their
# own, so the project binding is narrowed to this instance by a condition.
resource "google_project_iam_member" "capture_sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.capture.member

  condition {
    title       = "only-${local.names.sql}"
    description = "Only the pg2bq source instance."
    expression  = "resource.name == \"projects/${var.project_id}/instances/${google_sql_database_instance.pg.name}\" && resource.service == \"sqladmin.googleapis.com\""
  }
}

# --- writer ----------------------------------------------------------------------------------

resource "google_bigquery_dataset_iam_member" "writer_data_editor" {
  for_each = google_bigquery_dataset.target

  dataset_id = each.value.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.writer.member
}

# Query jobs (the staged MERGE) are created in the project: jobs have no parent
# resource with an IAM policy, so roles/bigquery.jobUser can only be granted on the project.
resource "google_project_iam_member" "writer_job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.writer.member
}

# The writer makes sure each dataset exists by creating it (409 means it exists). Without
# bigquery.datasets.create that call may be refused (403) even for a dataset Terraform made, and
# the permission lets the writer create the dataset of a schema added later. Nothing else.
resource "google_project_iam_custom_role" "dataset_creator" {
  role_id     = replace("${var.name_prefix}_dataset_creator", "-", "_")
  title       = "pg2bq dataset creator"
  description = "Create BigQuery datasets (the pg2bq writer creates the dataset of a new source schema)."
  permissions = ["bigquery.datasets.create"]
}

resource "google_project_iam_member" "writer_dataset_creator" {
  project = var.project_id
  role    = google_project_iam_custom_role.dataset_creator.id
  member  = google_service_account.writer.member
}

# The writer forwards a message it can never write (unreadable) to the dead-letter topic, with
# the reason (the push subscription has no dead-letter policy: pubsub.tf).
resource "google_pubsub_topic_iam_member" "writer_dead_letter_publisher" {
  for_each = local.streams

  topic  = google_pubsub_topic.dead_letter[each.key].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.writer.member
}

# --- who may call the writer -----------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  name     = google_cloud_run_v2_service.writer.name
  location = google_cloud_run_v2_service.writer.location
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

resource "google_cloud_run_v2_service_iam_member" "merge_invoker" {
  count = local.staged_merge ? 1 : 0

  name     = google_cloud_run_v2_service.writer.name
  location = google_cloud_run_v2_service.writer.location
  role     = "roles/run.invoker"
  member   = google_service_account.merge[0].member
}

# --- the operators: pg2bq deadletter list|replay, pg2bq quarantine retry ---------------------

# Pull, acknowledge and seek the dead-letter subscription. On a subscription the role grants only
# pubsub.subscriptions.consume (its other permissions apply to topics and snapshots).
resource "google_pubsub_subscription_iam_member" "operator_dead_letter_subscriber" {
  for_each = local.operator_grants

  subscription = google_pubsub_subscription.dead_letter[each.value.stream].id
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}

# Publish the replayed batches to the changes topic (pubsub.topics.publish only).
resource "google_pubsub_topic_iam_member" "operator_publisher" {
  for_each = local.operator_grants

  topic  = google_pubsub_topic.changes[each.value.stream].id
  role   = "roles/pubsub.publisher"
  member = each.value.member
}

locals {
  # Each operator on each stream's topic and dead-letter subscription.
  operator_grants = {
    for pair in setproduct(keys(local.streams), var.deadletter_operators) :
    "${pair[0]}/${pair[1]}" => { stream = pair[0], member = pair[1] }
  }
}

# --- the Pub/Sub service agent ---------------------------------------------------------------

# It signs the push OIDC tokens as the push service account (needed for projects created before
# April 2021; harmless after).
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
