# Alert policies. Distributions are reduced across series with the 99th percentile (log-based
# metrics have one series per revision or instance).

locals {
  user_metric = "logging.googleapis.com/user"
}

resource "google_monitoring_alert_policy" "freshness" {
  # Not before the log-based metric can be found (log_metrics.tf, time_sleep.log_metrics).
  depends_on = [time_sleep.log_metrics]

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
  # Not before the log-based metric can be found (log_metrics.tf, time_sleep.log_metrics).
  depends_on = [time_sleep.log_metrics]

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
      The replication slot keeps WAL that capture has not confirmed, and Cloud SQL has no
      max_slot_wal_keep_size: the disk grows up to sql_disk_autoresize_limit_gb, then fills, and
      the instance stops accepting writes. Check that capture streams (${local.capture_pools_text})
      and that Pub/Sub accepts its publishes; `pg2bq stream status` shows the slot. A paused stream
      (`pg2bq stream pause`) also holds WAL. If capture cannot catch up in time, give up the slot
      before the disk is full: `pg2bq stream delete --drop-slot` (capture stopped first),
      then start again and backfill the tables.
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
    display_name = "undelivered messages in ${local.dead_letters_text}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=${local.dead_letter_match}"
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
      The writer received change batches it can never write (not a change batch, a version it
      does not read, a claim check it must refuse, a batch a faulty writer refuses) and
      forwarded them here with the reason, so their changes are not in BigQuery; the dead-letter
      subscription ${local.dead_letters_text} holds the only copy. Outages never end here:
      the push subscription retries those. Runbook (README, "When the dead-letter alert fires"):
      1. `pg2bq deadletter list` shows each batch (table, sequence numbers, changes, the
         writer's reason, when it was published and dead-lettered) and consumes nothing.
      2. Fix the cause (a writer deploy, a setting); the writer's "push dead-lettered" log lines
         at those times say the same.
      3. `pg2bq deadletter replay` publishes them to the changes topic again and acknowledges
         each once published (`--table` for one table); the newest change per key still wins.
         `pg2bq validate` then compares each table with its source.
      A batch that cannot be written whatever the fix: `pg2bq backfill <schema.table>` copies
      the table again, then `pg2bq deadletter list --table <schema.table> --acknowledge`.
    EOT
  }
}

resource "google_monitoring_alert_policy" "capture_not_streaming" {
  # Not before the log-based metric can be found (log_metrics.tf, time_sleep.log_metrics).
  depends_on = [time_sleep.log_metrics]

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
      (`gcloud run worker-pools logs read ${local.capture_pools_text}`): "capture session ended;
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
    display_name = "oldest unacknowledged message of ${local.push_subscriptions_text}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=${local.push_subscription_match}"
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
      lines) or cannot keep up (raise writer_max_instances or writer_concurrency). Every failed
      push is retried until the subscription's message retention passes (7 days by default);
      a message older than that is dropped, so fix the cause before then.
    EOT
  }
}

# The writer answers pushes with errors (5xx: BigQuery unavailable, permissions; 4xx: unreadable
# batches when it has no dead-letter topic), from Pub/Sub's own count: it fires whatever the
# writer logs, and even when the writer cannot start.
resource "google_monitoring_alert_policy" "push_failures" {
  display_name          = "pg2bq ${var.name_prefix}: pushes to the writer failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.user_labels

  conditions {
    display_name = "push responses other than ack on ${local.push_subscriptions_text}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/push_request_count\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=${local.push_subscription_match} AND metric.labels.response_class!=\"ack\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      For 10 minutes Pub/Sub's pushes to the writer have been failing (response_class other than
      ack: remote_server_5xx, deadline_exceeded, remote_server_4xx, unreachable). Changes wait
      in the subscription and are retried. The writer's logs say why: "push failed; Pub/Sub will
      retry" (WARNING, field `kind`: bigquery_transient, bigquery_permanent, config, ...) and
      "push refused" (ERROR), in `gcloud run services logs read ${var.writer_service}`. They are
      retried until the subscription's message retention passes.
    EOT
  }
}

# Cloud SQL's own disk metric: it sees WAL held by the slot even when capture is down and reports
# no slot lag.
resource "google_monitoring_alert_policy" "sql_disk" {
  display_name          = "pg2bq ${var.name_prefix}: Cloud SQL disk above ${floor(var.disk_alert_utilization * 100)}%"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels
  user_labels           = var.user_labels

  conditions {
    display_name = "disk utilization of ${var.sql_database_id}"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/disk/utilization\" AND resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${var.sql_database_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.disk_alert_utilization
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
      The Cloud SQL disk is nearly full and cannot grow past sql_disk_autoresize_limit_gb. A
      replication slot that capture does not advance holds WAL until the disk fills and the
      instance stops accepting writes. Check the slot (`SELECT slot_name, active,
      pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)) FROM
      pg_replication_slots`) and capture (${local.capture_pools_text}). If capture cannot catch up
      in time, drop the slot (`pg2bq stream delete --drop-slot`, capture stopped first), then start again and backfill; or raise
      sql_disk_autoresize_limit_gb.
    EOT
  }
}
