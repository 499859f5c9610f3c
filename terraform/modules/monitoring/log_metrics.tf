# Log-based metrics from the structured JSON logs (tracing-stackdriver writes the fields of a log
# event into jsonPayload with camelCase names: freshness_ms -> jsonPayload.freshnessMs).
#
# writer: one "wrote batch" line per push written: table, rows, bytes, appendMs, freshnessMs.
# capture: one "capture metrics" line per minute (metric="capture"): streaming, changesPerS,
#          freshnessMs (commit to Pub/Sub acknowledgement), slotLagBytes.

locals {
  writer_logs  = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.writer_service}\""
  capture_logs = "resource.type=\"cloud_run_worker_pool\" AND resource.labels.worker_pool_name=\"${var.capture_worker_pool}\""

  wrote_batch  = "${local.writer_logs} AND jsonPayload.message=\"wrote batch\""
  capture_line = "${local.capture_logs} AND jsonPayload.metric=\"capture\""

  metric_prefix = replace(var.name_prefix, "-", "_")
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

resource "google_logging_metric" "errors" {
  name        = "${local.metric_prefix}_errors"
  description = "pg2bq: error log lines of capture and the writer, by the module that logged them and the writer's error kind."
  filter      = "(${local.writer_logs} OR ${local.capture_logs}) AND jsonPayload.target:* AND severity>=ERROR"
  label_extractors = {
    source = "REGEXP_EXTRACT(jsonPayload.target, \"^(?:pg2bq_)?([a-z_]+)\")"
    kind   = "EXTRACT(jsonPayload.kind)"
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
  }
}
