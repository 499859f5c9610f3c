# One dashboard: freshness, throughput, slot lag, errors, Pub/Sub delivery, the writer's scale.

locals {
  user_metric_filter = { for k, m in {
    writer_freshness  = google_logging_metric.writer_freshness
    writer_rows       = google_logging_metric.writer_rows
    capture_freshness = google_logging_metric.capture_freshness
    capture_slot_lag  = google_logging_metric.capture_slot_lag
    capture_changes   = google_logging_metric.capture_changes_rate
    capture_streaming = google_logging_metric.capture_streaming
    errors            = google_logging_metric.errors
  } : k => "metric.type=\"logging.googleapis.com/user/${m.name}\"" }

  push_sub_filter = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=${local.push_subscription_match}"
  dlq_sub_filter  = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=${local.dead_letter_match}"

  # A time series of a distribution metric reduced across series to one percentile.
  percentile = { for p in ["50", "99"] : p => {
    alignmentPeriod    = "60s"
    perSeriesAligner   = "ALIGN_DELTA"
    crossSeriesReducer = "REDUCE_PERCENTILE_${p}"
  } }

  tiles = [
    {
      title = "Freshness: source commit to BigQuery (writer)"
      datasets = [for p in ["50", "99"] : {
        legendTemplate  = "p${p}"
        plotType        = "LINE"
        timeSeriesQuery = { timeSeriesFilter = { filter = local.user_metric_filter.writer_freshness, aggregation = local.percentile[p] } }
      }]
      y = "ms"
    },
    {
      title = "Freshness: source commit to Pub/Sub (capture)"
      datasets = [for p in ["50", "99"] : {
        legendTemplate  = "p${p}"
        plotType        = "LINE"
        timeSeriesQuery = { timeSeriesFilter = { filter = local.user_metric_filter.capture_freshness, aggregation = local.percentile[p] } }
      }]
      y = "ms"
    },
    {
      title = "Replication slot lag"
      datasets = [{
        legendTemplate  = "WAL held back"
        plotType        = "LINE"
        timeSeriesQuery = { timeSeriesFilter = { filter = local.user_metric_filter.capture_slot_lag, aggregation = local.percentile["99"] } }
      }]
      y = "bytes"
    },
    {
      title = "Changes published per second (capture)"
      datasets = [{
        legendTemplate = "changes/s"
        plotType       = "LINE"
        timeSeriesQuery = { timeSeriesFilter = {
          filter      = local.user_metric_filter.capture_changes
          aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_MEAN" }
        } }
      }]
      y = "changes/s"
    },
    {
      title = "Rows written per second, by table (writer)"
      datasets = [{
        plotType = "LINE"
        # Distribution metrics read as <name>_sum / _count / _bucket in PromQL.
        timeSeriesQuery = {
          prometheusQuery = "sum by (table) (rate(logging_googleapis_com:user_${google_logging_metric.writer_rows.name}_sum[5m]))"
        }
      }]
      y = "rows/s"
    },
    {
      title = "Errors per minute, by source and kind"
      datasets = [{
        plotType = "STACKED_BAR"
        timeSeriesQuery = { timeSeriesFilter = {
          filter = local.user_metric_filter.errors
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_DELTA"
            crossSeriesReducer = "REDUCE_SUM"
            groupByFields      = ["metric.label.source", "metric.label.kind"]
          }
        } }
      }]
      y = "errors"
    },
    {
      title = "Push backlog (unacknowledged messages)"
      datasets = [{
        legendTemplate = "backlog"
        plotType       = "LINE"
        timeSeriesQuery = { timeSeriesFilter = {
          filter      = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.push_sub_filter}"
          aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        } }
      }]
      y = "messages"
    },
    {
      title = "Oldest unacknowledged push message"
      datasets = [{
        legendTemplate = "age"
        plotType       = "LINE"
        timeSeriesQuery = { timeSeriesFilter = {
          filter      = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.push_sub_filter}"
          aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        } }
      }]
      y = "s"
    },
    {
      title = "Push responses by class"
      datasets = [{
        plotType = "STACKED_BAR"
        timeSeriesQuery = { timeSeriesFilter = {
          filter = "metric.type=\"pubsub.googleapis.com/subscription/push_request_count\" AND ${local.push_sub_filter}"
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_RATE"
            crossSeriesReducer = "REDUCE_SUM"
            groupByFields      = ["metric.label.response_class"]
          }
        } }
      }]
      y = "requests/s"
    },
    {
      title = "Dead-letter messages waiting"
      datasets = [{
        legendTemplate = "dead-lettered"
        plotType       = "LINE"
        timeSeriesQuery = { timeSeriesFilter = {
          filter      = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.dlq_sub_filter}"
          aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        } }
      }]
      y = "messages"
    },
    {
      title = "Capture streaming (reports per 5 min; 0 = not streaming)"
      datasets = [{
        legendTemplate = "streaming reports"
        plotType       = "LINE"
        timeSeriesQuery = { timeSeriesFilter = {
          filter      = local.user_metric_filter.capture_streaming
          aggregation = { alignmentPeriod = "300s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_SUM" }
        } }
      }]
      y = "reports"
    },
    {
      title = "Writer instances"
      datasets = [{
        plotType = "STACKED_AREA"
        timeSeriesQuery = { timeSeriesFilter = {
          filter = "metric.type=\"run.googleapis.com/container/instance_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.writer_service}\""
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = "ALIGN_MAX"
            crossSeriesReducer = "REDUCE_SUM"
            groupByFields      = ["metric.label.state"]
          }
        } }
      }]
      y = "instances"
    },
  ]
}

resource "google_monitoring_dashboard" "pg2bq" {
  dashboard_json = jsonencode({
    displayName = "pg2bq ${var.name_prefix}"
    labels      = { pg2bq = "" }
    mosaicLayout = {
      columns = 12
      tiles = [for i, t in local.tiles : {
        xPos   = (i % 2) * 6
        yPos   = floor(i / 2) * 4
        width  = 6
        height = 4
        widget = {
          title = t.title
          xyChart = {
            dataSets = t.datasets
            yAxis    = { label = t.y, scale = "LINEAR" }
          }
        }
      }]
    }
  })
}
