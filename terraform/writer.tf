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
      # Datasets the writer creates for schemas added later get the labels of bigquery.tf's.
      PG2BQ_BQ_DATASET_LABELS = join(",", [for k, v in local.dataset_labels : "${k}=${v}"])
      PG2BQ_CLAIM_BUCKET      = google_storage_bucket.claims.name
      # Merged staging rows (DELETE and TRUNCATE tombstones among them) are kept as long as a
      # late delivery can arrive: the subscription's retention plus the dead-letter topic's
      # (replays), then pruned.
      PG2BQ_CHANGE_RETENTION_SECS = tostring(
        tonumber(trimsuffix(var.pubsub_message_retention, "s")) + tonumber(trimsuffix(var.pubsub_dead_letter_retention, "s"))
      )
      # A /merge round starts MERGEs for this long, then answers; the next run continues.
      PG2BQ_MERGE_ROUND_SECS  = tostring(var.merge_round_seconds)
      PG2BQ_MERGE_PARALLELISM = tostring(var.merge_parallelism)
    },
    # ... and their CMEK key.
    { for k, v in { PG2BQ_BQ_KMS_KEY_NAME = var.bq_kms_key_name } : k => v if v != null },
    # One dataset for every table, or a dataset per schema.
    { for k, v in { PG2BQ_BQ_DATASET = var.bq_dataset } : k => v if var.bq_dataset != "" },
    { for k, v in { PG2BQ_BQ_DATASET_PREFIX = var.bq_dataset_prefix } : k => v if var.bq_dataset == "" },
    # One stream: its dead-letter topic. Several: each stream's own settings (streams.tf).
    local.multi_stream ? { PG2BQ_CONFIG_TOML = local.writer_streams_toml } : { PG2BQ_DEAD_LETTER_TOPIC = google_pubsub_topic.dead_letter["default"].id },
    var.writer_env,
  )
}

locals {
  # capture's batch limit (PG2BQ_BATCH_MAX_BYTES; capture clamps it to 9,000,000) bounds the
  # decompressed size of a push.
  capture_batch_max_bytes = min(9000000, tonumber(lookup(var.capture_env, "PG2BQ_BATCH_MAX_BYTES", "4000000")))
  writer_memory_mib = (endswith(var.writer_memory, "Gi")
    ? tonumber(trimsuffix(var.writer_memory, "Gi")) * 1024
  : tonumber(trimsuffix(var.writer_memory, "Mi")))
  writer_memory_needed_mib = ceil(64 + var.writer_concurrency * 12 * local.capture_batch_max_bytes / 1048576)
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
    # At most the push acknowledgement deadline (variables_run.tf validates it), so Pub/Sub never
    # delivers a push again while it still runs; /merge gets as long.
    timeout = "${var.writer_timeout_seconds}s"
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

  lifecycle {
    # The sizing rule of terraform/README.md ("Push timing and sizing"), from measurements: a push
    # peaks at about 12 times its decompressed batch, and writer_concurrency run at once.
    precondition {
      condition     = local.writer_memory_mib >= local.writer_memory_needed_mib
      error_message = "writer_memory (${var.writer_memory}) is below ${local.writer_memory_needed_mib}Mi, what ${var.writer_concurrency} concurrent pushes of ${local.capture_batch_max_bytes}-byte batches need (64 MiB + concurrency x 12 x batch bytes): raise writer_memory or lower writer_concurrency."
    }
  }
}
