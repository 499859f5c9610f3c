# Log-based metrics from the structured JSON logs (tracing-stackdriver writes the fields of a log
# event into jsonPayload with camelCase names: freshness_ms -> jsonPayload.freshnessMs).
#
# writer: one "wrote batch" line per push written: table, rows, bytes, appendMs, freshnessMs.
# capture: one "capture metrics" line per minute (metric="capture"): streaming, changesPerS,
#          freshnessMs (commit to Pub/Sub acknowledgement), slotLagBytes.

locals {
  writer_logs  = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.writer_service}\""
  capture_logs = "resource.type=\"cloud_run_worker_pool\" AND resource.labels.worker_pool_name${local.capture_pool_match}"

  wrote_batch  = "${local.writer_logs} AND jsonPayload.message=\"wrote batch\""
  capture_line = "${local.capture_logs} AND jsonPayload.metric=\"capture\""

  metric_prefix = replace(var.name_prefix, "-", "_")

  # The writer's log line of a push answered 5xx (services/writer/src/http/routes.rs).
  push_failed = "push failed; Pub/Sub will retry"
}

resource "google_logging_metric" "writer_freshness" {
  name            = "${local.metric_prefix}_writer_freshness"
  description     = "pg2bq: source commit to BigQuery acknowledgement of each written batch (its oldest change), in ms."
  filter          = local.wrote_batch
  value_extractor = "EXTRACT(jsonPayload.freshnessMs)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "pg2bq writer freshness"
  }

  # 10 ms to about 6 days, each bucket 25% wider than the last.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 80
      growth_factor      = 1.25
      scale              = 10
    }
  }
}

resource "google_logging_metric" "writer_rows" {
  name            = "${local.metric_prefix}_writer_rows"
  description     = "pg2bq: rows BigQuery acknowledged per written batch, by source table."
  filter          = local.wrote_batch
  value_extractor = "EXTRACT(jsonPayload.rows)"
  label_extractors = {
    table = "EXTRACT(jsonPayload.table)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "pg2bq writer rows per batch"

    labels {
      key         = "table"
      value_type  = "STRING"
      description = "Source table, schema.table."
    }
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "capture_freshness" {
  name            = "${local.metric_prefix}_capture_freshness"
  description     = "pg2bq: source commit to Pub/Sub acknowledgement of capture's last batch, in ms (sampled every minute)."
  filter          = local.capture_line
  value_extractor = "EXTRACT(jsonPayload.freshnessMs)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "pg2bq capture freshness"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 80
      growth_factor      = 1.25
      scale              = 10
    }
  }
}

resource "google_logging_metric" "capture_slot_lag" {
  name            = "${local.metric_prefix}_capture_slot_lag"
  description     = "pg2bq: WAL bytes between the server's position and the replication slot's confirmed position (sampled every minute)."
  filter          = local.capture_line
  value_extractor = "EXTRACT(jsonPayload.slotLagBytes)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "By"
    display_name = "pg2bq replication slot lag"
  }

  # 1 KiB to about 1 PiB, each bucket 25% wider than the last.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 100
      growth_factor      = 1.25
      scale              = 1024
    }
  }
}

resource "google_logging_metric" "capture_changes_rate" {
  name            = "${local.metric_prefix}_capture_changes_rate"
  description     = "pg2bq: row changes per second that Pub/Sub acknowledged to capture, averaged over each minute."
  filter          = local.capture_line
  value_extractor = "EXTRACT(jsonPayload.changesPerS)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1/s"
    display_name = "pg2bq capture changes per second"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.5
      scale              = 1
    }
  }
}

resource "google_logging_metric" "capture_streaming" {
  name   = "${local.metric_prefix}_capture_streaming"
  filter = "${local.capture_line} AND jsonPayload.streaming=true"

  description = "pg2bq: capture metrics lines that report an open replication stream (one a minute while streaming)."

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "pg2bq capture streaming"
  }
}

# Errors, and the writer's pushes that failed and will be retried: the writer logs those at
# WARNING (they may heal), but while BigQuery or the writer's permissions fail, every push is one.
resource "google_logging_metric" "errors" {
  name        = "${local.metric_prefix}_errors"
  description = "pg2bq: error log lines of capture and the writer, and the writer's retried push failures (WARNING), by the module that logged them, the writer's error kind and the severity."
  filter      = "(${local.writer_logs} OR ${local.capture_logs}) AND jsonPayload.target:* AND (severity>=ERROR OR jsonPayload.message=\"${local.push_failed}\")"
  label_extractors = {
    source   = "REGEXP_EXTRACT(jsonPayload.target, \"^(?:pg2bq_)?([a-z_]+)\")"
    kind     = "EXTRACT(jsonPayload.kind)"
    severity = "EXTRACT(severity)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "pg2bq errors"

    labels {
      key         = "source"
      value_type  = "STRING"
      description = "capture, writer, or the library that logged the error."
    }

    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "The writer's error kind (bad_batch, bigquery_permanent, ...); empty for capture."
    }

    labels {
      key         = "severity"
      value_type  = "STRING"
      description = "ERROR and above, or WARNING for a push that failed and that Pub/Sub retries."
    }
  }
}

# Cloud Monitoring refuses an alert policy on a log-based metric for up to 10 minutes after the
# metric's creation ("Cannot find metric(s) ... could take up to 10 minutes";
# terraform-provider-google#11102, where the provider does not retry). The policies wait here;
# a replaced metric waits again.
resource "time_sleep" "log_metrics" {
  create_duration = var.log_metric_wait
  triggers = {
    for k, m in {
      writer_freshness  = google_logging_metric.writer_freshness
      capture_slot_lag  = google_logging_metric.capture_slot_lag
      capture_streaming = google_logging_metric.capture_streaming
      errors            = google_logging_metric.errors
    } : k => m.id
  }
}
