# Monitoring: where alerts go and when they fire.

variable "alert_email" {
  description = "Email address that receives the alerts (an email notification channel is created); null: none."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null || can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", var.alert_email))
    error_message = "alert_email must be an email address."
  }
}

variable "notification_channels" {
  description = "Existing notification channels (projects/P/notificationChannels/ID) that receive the alerts too."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "notification_channels must be channel names: projects/P/notificationChannels/ID."
  }
}

variable "freshness_alert_seconds" {
  description = "Alert when the 99th percentile of freshness (source commit to BigQuery acknowledgement) stays above this many seconds for 10 minutes."
  type        = number
  default     = 300

  validation {
    condition     = var.freshness_alert_seconds > 0
    error_message = "freshness_alert_seconds must be positive."
  }
}

variable "slot_lag_alert_bytes" {
  description = "Alert when the replication slot holds back more WAL than this for 10 minutes (capture's own measurement). Null: a fifth of sql_disk_size_gb."
  type        = number
  default     = null

  validation {
    condition     = var.slot_lag_alert_bytes == null || try(var.slot_lag_alert_bytes > 0, false)
    error_message = "slot_lag_alert_bytes must be positive."
  }
}

variable "capture_silence_minutes" {
  description = "Alert when capture has not reported streaming (its metrics line, every 60 s) for this many minutes."
  type        = number
  default     = 10

  validation {
    condition     = var.capture_silence_minutes >= 3 && var.capture_silence_minutes <= 1440
    error_message = "capture_silence_minutes must be between 3 and 1440."
  }
}

variable "sql_disk_alert_utilization" {
  description = "Alert when Cloud SQL's disk is fuller than this fraction for 10 minutes (Cloud SQL's own metric: it fires even when capture is down and reports no slot lag)."
  type        = number
  default     = 0.8

  validation {
    condition     = var.sql_disk_alert_utilization > 0 && var.sql_disk_alert_utilization < 1
    error_message = "sql_disk_alert_utilization must be between 0 and 1."
  }
}

variable "log_metric_wait" {
  description = "Wait between creating the log-based metrics and the alert policies that use them: Cloud Monitoring refuses a policy on a metric created moments ago (\"Cannot find metric(s)\", up to 10 minutes; terraform-provider-google#11102). Runs alongside Cloud SQL's creation; again only when a metric is replaced."
  type        = string
  default     = "10m"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.log_metric_wait))
    error_message = "log_metric_wait must be a duration in seconds or minutes, e.g. \"600s\" or \"10m\"."
  }
}
