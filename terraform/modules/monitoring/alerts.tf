# Alert policies. Distributions are reduced across series with the 99th percentile (log-based
# metrics have one series per revision or instance).

locals {
  user_metric = "logging.googleapis.com/user"
}

resource "google_monitoring_alert_policy" "freshness" {
  display_name          = "pg2bq ${var.name_prefix}: BigQuery freshness above ${var.freshness_alert_seconds}s"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = var.user_labels

  conditions {
    display_name = "p99 of source commit to BigQuery acknowledgement"
    condition_threshold {
      filter          = "metric.type=\"${local.user_metric}/${google_logging_metric.writer_freshness.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.freshness_alert_seconds * 1000
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Changes take longer than ${var.freshness_alert_seconds}s from their commit in PostgreSQL to
      BigQuery. Look at the dashboard: capture freshness (is capture behind?), the push backlog
      and push responses (is the writer failing or too slow? raise writer_max_instances), and the
      writer's errors (`severity>=WARNING` in the logs of ${var.writer_service}).
    EOT
  }
}

resource "google_monitoring_alert_policy" "slot_lag" {
  display_name          = "pg2bq ${var.name_prefix}: replication slot holds back more than ${floor(var.slot_lag_alert_bytes / 1048576)} MiB of WAL"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels
  user_labels           = var.user_labels

  conditions {
    display_name = "slot lag (bytes)"
    condition_threshold {
      filter          = "metric.type=\"${local.user_metric}/${google_logging_metric.capture_slot_lag.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.slot_lag_alert_bytes
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The replication slot keeps WAL that capture has not confirmed. The disk fills, and past
      max_slot_wal_keep_size PostgreSQL invalidates the slot (then the tables must be backfilled
      again). Check that capture streams (${var.capture_worker_pool}) and that Pub/Sub accepts its
      publishes; `pg2bq stream status` shows the slot. A paused stream (`pg2bq stream pause`) also
      holds WAL.
    EOT
  }
}

resource "google_monitoring_alert_policy" "dead_letter" {
  display_name          = "pg2bq ${var.name_prefix}: messages in the dead-letter topic"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.user_labels

  conditions {
    display_name = "undelivered messages in ${var.dead_letter_subscription}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.dead_letter_subscription}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The writer refused some change batches (4xx) on every delivery attempt, so their changes
      are not in BigQuery. Read them with
      `gcloud pubsub subscriptions pull ${var.dead_letter_subscription} --limit 5` (attribute
      `table` names the table) and the writer's "push refused" log lines (field `kind`). After a
      fix, replay them by publishing them again to the changes topic, or backfill the table
      again (`pg2bq backfill <schema.table>`), then acknowledge them.
    EOT
  }
}

resource "google_monitoring_alert_policy" "capture_not_streaming" {
  display_name          = "pg2bq ${var.name_prefix}: capture not streaming"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels
  user_labels           = var.user_labels

  conditions {
    display_name = "no streaming=true metrics line for ${var.capture_silence_minutes} min"
    condition_absent {
      filter   = "metric.type=\"${local.user_metric}/${google_logging_metric.capture_streaming.name}\""
      duration = "${var.capture_silence_minutes * 60}s"
      aggregations {
        alignment_period     = "120s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      capture has not reported an open replication stream for ${var.capture_silence_minutes}
      minutes: it is down, reconnecting, or waiting for the slot. Read its logs
      (`gcloud run worker-pools logs read ${var.capture_worker_pool}`): "capture session ended;
      reconnecting" carries the cause, and an invalidated or dropped slot stops capture with the
      way to recover.
    EOT
  }
}

resource "google_monitoring_alert_policy" "push_backlog" {
  display_name          = "pg2bq ${var.name_prefix}: push backlog older than ${var.freshness_alert_seconds}s"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = var.user_labels

  conditions {
    display_name = "oldest unacknowledged message of ${var.push_subscription}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.push_subscription}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.freshness_alert_seconds
      duration        = "600s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Pub/Sub holds changes the writer has not acknowledged for over ${var.freshness_alert_seconds}s:
      the writer is failing (5xx: BigQuery unavailable or permissions; see its "push failed" log
      lines) or cannot keep up (raise writer_max_instances or writer_concurrency).
    EOT
  }
}
