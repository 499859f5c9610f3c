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

  project_id               = var.project_id
  name_prefix              = var.name_prefix
  writer_service           = google_cloud_run_v2_service.writer.name
  capture_worker_pool      = google_cloud_run_v2_worker_pool.capture.name
  push_subscription        = google_pubsub_subscription.push.name
  dead_letter_subscription = google_pubsub_subscription.dead_letter.name
  notification_channels    = concat(google_monitoring_notification_channel.email[*].id, var.notification_channels)
  freshness_alert_seconds  = var.freshness_alert_seconds
  slot_lag_alert_bytes     = coalesce(var.slot_lag_alert_bytes, var.sql_max_slot_wal_keep_size_mb * 1024 * 1024 / 2)
  capture_silence_minutes  = var.capture_silence_minutes
  user_labels              = local.labels
}
