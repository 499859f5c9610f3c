# The writer: a stateless, autoscaled Cloud Run service that Pub/Sub pushes change batches to.

locals {
  writer_env = merge(
    {
      PG2BQ_PROJECT               = var.project_id
      PG2BQ_BQ_LOCATION           = var.bq_location
      PG2BQ_WRITE_MODE            = var.write_mode
      PG2BQ_MERGE_STRATEGY        = var.merge_strategy
      PG2BQ_MAX_STALENESS_SECS    = tostring(var.max_staleness_secs)
      PG2BQ_PUSH_AUTH             = "oidc"
      PG2BQ_PUSH_AUDIENCE         = local.push_audience
      PG2BQ_PUSH_SERVICE_ACCOUNT  = google_service_account.push.email
      PG2BQ_MERGE_AUDIENCE        = local.merge_audience
      PG2BQ_MERGE_SERVICE_ACCOUNT = local.staged_merge ? google_service_account.merge[0].email : google_service_account.push.email
      # No timer: CPU is only allocated during requests, so Cloud Scheduler calls /merge instead.
      PG2BQ_MERGE_INTERVAL_MS = "0"
      PG2BQ_LOG_FORMAT        = "json"
      RUST_LOG                = "info"
      PG2BQ_CLAIM_BUCKET      = google_storage_bucket.claims.name
    },
    # One dataset for every table, or a dataset per schema.
    { for k, v in { PG2BQ_BQ_DATASET = var.bq_dataset } : k => v if var.bq_dataset != "" },
    { for k, v in { PG2BQ_BQ_DATASET_PREFIX = var.bq_dataset_prefix } : k => v if var.bq_dataset == "" },
    var.writer_env,
  )
}

resource "google_cloud_run_v2_service" "writer" {
  name                = local.names.writer
  location            = var.region
  description         = "pg2bq writer: Pub/Sub push endpoint (/push) and staged MERGE (/merge) writing to BigQuery."
  deletion_protection = var.deletion_protection
  labels              = { component = "writer" }

  # Internal by default: Pub/Sub and Cloud Scheduler of this project count as internal traffic
  # (Cloud Run's ingress documentation), so push and /merge still arrive; the internet does not.
  ingress = var.writer_ingress
  # The tokens carry these audiences (fixed strings: an audience made of the service URL would
  # make the service depend on itself). Cloud Run accepts them, and the writer verifies them too.
  custom_audiences = [local.push_audience, local.merge_audience]

  template {
    service_account                  = google_service_account.writer.email
    max_instance_request_concurrency = var.writer_concurrency
    # At least the push acknowledgement deadline; a /merge of many tables takes longer.
    timeout = "600s"
    labels  = { component = "writer" }

    scaling {
      min_instance_count = var.writer_min_instances
      max_instance_count = var.writer_max_instances
    }

    containers {
      name  = "writer"
      image = var.writer_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.writer_cpu
          memory = var.writer_memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.writer_env
        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 15
        http_get {
          path = "/healthz"
        }
      }

      liveness_probe {
        period_seconds    = 30
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }
    }
  }
}
