output "dashboard_id" {
  description = "ID of the pg2bq dashboard (projects/P/dashboards/ID)."
  value       = google_monitoring_dashboard.pg2bq.id
}

output "log_metrics" {
  description = "Names of the log-based metrics (metric type logging.googleapis.com/user/<name>)."
  value = {
    writer_freshness     = google_logging_metric.writer_freshness.name
    writer_rows          = google_logging_metric.writer_rows.name
    capture_freshness    = google_logging_metric.capture_freshness.name
    capture_slot_lag     = google_logging_metric.capture_slot_lag.name
    capture_changes_rate = google_logging_metric.capture_changes_rate.name
    capture_streaming    = google_logging_metric.capture_streaming.name
    errors               = google_logging_metric.errors.name
  }
}

output "alert_policies" {
  description = "Names of the alert policies."
  value = {
    freshness             = google_monitoring_alert_policy.freshness.name
    slot_lag              = google_monitoring_alert_policy.slot_lag.name
    dead_letter           = google_monitoring_alert_policy.dead_letter.name
    capture_not_streaming = google_monitoring_alert_policy.capture_not_streaming.name
    push_backlog          = google_monitoring_alert_policy.push_backlog.name
    push_failures         = google_monitoring_alert_policy.push_failures.name
    sql_disk              = google_monitoring_alert_policy.sql_disk.name
  }
}
