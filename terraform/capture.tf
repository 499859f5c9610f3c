# capture: one always-on instance in a Cloud Run worker pool.
#
# Why a worker pool rather than an always-on service: capture pulls (it reads the replication
# stream and publishes); nothing calls it. A worker pool has no endpoint and no ingress to secure,
# its CPU is always allocated, and manual scaling pins exactly one instance, where a service would
# need an HTTP listener, min = max = 1 and CPU always allocated. One instance is what a
# replication slot allows; during a rollout the new instance waits while the old one still holds
# the slot, then resumes from it.
#
# How it reaches Cloud SQL: through the Cloud SQL Auth Proxy, a sidecar listening on
# 127.0.0.1:5432. The proxy authorizes with capture's service account and encrypts with mTLS, so
# the instance can require client certificates and admit connectors only, and no certificate or
# key has to be managed. (capture's replication connection speaks TCP only, so Cloud Run's Cloud
# SQL socket volume would not serve it.) In private mode the proxy dials the private IP over
# Direct VPC egress; in public mode, the public IP.

locals {
  # Each stream's capture settings: the stream's database, slot, publication, patterns and topic.
  capture_env = {
    for name, stream in local.streams : name => merge(
      {
        PG2BQ_PG_HOST     = "127.0.0.1"
        PG2BQ_PG_PORT     = "5432"
        PG2BQ_PG_USER     = var.pg_replication_user
        PG2BQ_PG_DATABASE = stream.database
        # The hop to the proxy stays inside the instance; the proxy encrypts the rest.
        PG2BQ_PG_SSLMODE         = "disable"
        PG2BQ_SLOT               = stream.slot
        PG2BQ_PUBLICATION        = stream.slot
        PG2BQ_INCLUDE            = stream.include
        PG2BQ_EXCLUDE            = stream.exclude
        PG2BQ_BACKFILL           = stream.backfill
        PG2BQ_PARTITIONS         = stream.partitions
        PG2BQ_PROJECT            = var.project_id
        PG2BQ_TOPIC              = google_pubsub_topic.changes[name].name
        PG2BQ_COMPRESSION        = var.capture_compression
        PG2BQ_CLAIM_BUCKET       = google_storage_bucket.claims.name
        PG2BQ_METRICS_LOG_SECS   = "60"
        PG2BQ_RECONNECT_MAX_SECS = "30"
        PG2BQ_LOG_FORMAT         = "json"
        # Capture sweeps re-copied tables unless the writer uses native CDC (see the README).
        PG2BQ_MERGE_STRATEGY = var.merge_strategy
        RUST_LOG             = "info"
      },
      var.capture_env,
      stream.capture_env,
    )
  }
}

# Capture starts only once everything it needs exists (depends_on below): its password secret has
# a version and its service account may read it (with time for IAM to propagate), it may publish,
# and the push subscription exists, since Pub/Sub drops what is published to a topic without a
# subscription after capture has confirmed it to PostgreSQL. With pg_password_version = 0 nobody
# but you can add that version: apply with capture_enabled = false first (README, Deploy to GCP).
# One worker pool per stream (one instance each: one slot, one reader).
resource "google_cloud_run_v2_worker_pool" "capture" {
  for_each = var.capture_enabled ? local.streams : {}

  name                = each.value.names.capture
  location            = var.region
  description         = "pg2bq capture: PostgreSQL logical replication to Pub/Sub."
  launch_stage        = var.worker_pool_launch_stage
  deletion_protection = var.deletion_protection
  labels              = { component = "capture" }

  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = 1
  }

  template {
    service_account = google_service_account.capture.email
    labels = {
      component = "capture"
      # A new password version makes a new revision, whose instance reads the new secret.
      pg-password-version = tostring(var.pg_password_version)
    }

    containers {
      name  = "capture"
      image = var.capture_image
      # Start after the proxy (capture also retries its connection by itself).
      depends_on = ["cloud-sql-proxy"]

      resources {
        limits = {
          cpu    = var.capture_cpu
          memory = var.capture_memory
        }
      }

      dynamic "env" {
        for_each = local.capture_env[each.key]
        content {
          name  = env.key
          value = env.value
        }
      }

      env {
        name = "PG2BQ_PG_PASSWORD"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.pg_password.secret_id
            version = "latest"
          }
        }
      }
    }

    containers {
      name  = "cloud-sql-proxy"
      image = var.cloud_sql_proxy_image
      # On SIGTERM, keep capture's connection while it publishes what it holds and confirms its
      # position (within Cloud Run's shutdown grace period).
      # The stream's instance: the deployment's, or the one the stream names.
      args = concat(["--max-sigterm-delay=10s"], local.cloud_sql_proxy_flags, [each.value.instance])

      resources {
        limits = {
          cpu    = "1"
          memory = "256Mi"
        }
      }
    }

    # Private mode: Direct VPC egress into the subnet peered with Cloud SQL; only private ranges
    # go through it (Pub/Sub and the other Google APIs keep Cloud Run's own path).
    dynamic "vpc_access" {
      for_each = local.private_ip ? [1] : []
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.this[0].id
          subnetwork = google_compute_subnetwork.capture[0].id
        }
      }
    }
  }

  instance_splits {
    type    = "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  depends_on = [
    time_sleep.capture_iam,
    google_secret_manager_secret_version.pg_password,
    google_pubsub_subscription.push,
  ]
}

# IAM is eventually consistent (typically 2 minutes, up to 7: IAM "Access change propagation");
# Cloud Run checks at deployment that capture's identity can read the secret.
resource "time_sleep" "capture_iam" {
  create_duration = var.iam_propagation_wait
  triggers = {
    secret    = google_secret_manager_secret_iam_member.capture_password.etag
    publisher = join(",", [for m in google_pubsub_topic_iam_member.capture_publisher : m.etag])
    sql       = google_project_iam_member.capture_sql_client.etag
  }
}
