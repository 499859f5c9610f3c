locals {
  labels = merge(var.labels, {
    app        = "pg2bq"
    managed-by = "terraform"
  })

  # Names of the deployed resources (all start with the prefix, so several deployments can share
  # a project; the log-based metrics are per deployment too).
  names = {
    capture         = "${var.name_prefix}-capture"
    writer          = "${var.name_prefix}-writer"
    topic           = "${var.name_prefix}-changes"
    push            = "${var.name_prefix}-changes-push"
    dead_letter     = "${var.name_prefix}-changes-dead-letter"
    dead_letter_sub = "${var.name_prefix}-changes-dead-letter-pull"
    sql             = "${var.name_prefix}-pg"
    password        = "${var.name_prefix}-pg-password"
    network         = "${var.name_prefix}-net"
    merge_job       = "${var.name_prefix}-merge"
  }

  private_ip = var.sql_ip_mode == "private"
  # The Cloud SQL Auth Proxy sidecar of capture and of the setup job: on localhost:5432, to the
  # instance, by private IP in private mode (each adds its own shutdown argument first).
  cloud_sql_proxy_flags = concat(
    ["--address=127.0.0.1", "--port=5432", "--structured-logs"],
    local.private_ip ? ["--private-ip"] : [],
  )
  cloud_sql_proxy_args = concat(local.cloud_sql_proxy_flags, [google_sql_database_instance.pg.connection_name])

  # The labels of the target datasets: the provider's default labels plus their component. The
  # writer gives the same to the datasets it creates.
  dataset_labels = merge(local.labels, { component = "target" })

  push_subscription = coalesce(var.pubsub_push_subscription_name, local.names.push)

  # The staged MERGE runs only where merge mode uses the staged strategy (`auto` = staged).
  staged_merge = var.write_mode == "merge" && var.merge_strategy != "native"

  # The datasets the writer fills: one per source schema (`<prefix><schema>`), or a single one.
  datasets = var.bq_dataset != "" ? [var.bq_dataset] : [for s in var.source_schemas : "${var.bq_dataset_prefix}${s}"]

  # The OIDC audiences the writer verifies. They are custom audiences of the Cloud Run service
  # (fixed strings rather than its URL, which would make the service depend on itself).
  push_audience  = "${var.project_id}/${local.names.writer}/push"
  merge_audience = "${var.project_id}/${local.names.writer}/merge"

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}
