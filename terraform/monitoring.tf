# Log-based metrics from the services' structured logs, a dashboard and the alert policies.

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == null ? 0 : 1

  display_name = "pg2bq alerts (${var.name_prefix})"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
  user_labels = local.labels
}

module "monitoring" {
  source = "./modules/monitoring"

  project_id  = var.project_id
  name_prefix = var.name_prefix
  # Names rather than the resources: the log-based metrics are created at the start of the apply,
  # so their propagation wait runs while Cloud SQL is being created.
  writer_service            = local.names.writer
  capture_worker_pools      = [for s in local.streams : s.names.capture]
  push_subscriptions        = [for s in local.streams : s.names.push]
  dead_letter_subscriptions = [for s in local.streams : s.names.dead_letter_sub]
  sql_database_id           = "${var.project_id}:${local.names.sql}"
  notification_channels     = concat(google_monitoring_notification_channel.email[*].id, var.notification_channels)
  freshness_alert_seconds   = var.freshness_alert_seconds
  slot_lag_alert_bytes      = coalesce(var.slot_lag_alert_bytes, var.sql_disk_size_gb * 1073741824 / 5)
  disk_alert_utilization    = var.sql_disk_alert_utilization
  capture_silence_minutes   = var.capture_silence_minutes
  log_metric_wait           = var.log_metric_wait
  user_labels               = local.labels
}
