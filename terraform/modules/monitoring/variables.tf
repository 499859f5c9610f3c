variable "project_id" {
  description = "Project of the log-based metrics, the dashboard and the alert policies."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the metric, dashboard and policy names (the deployment's name_prefix)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens."
  }
}

variable "writer_service" {
  description = "Name of the writer's Cloud Run service (its logs feed the writer metrics)."
  type        = string
}

variable "capture_worker_pools" {
  description = "Names of capture's Cloud Run worker pools, one per stream (their logs feed the capture metrics)."
  type        = list(string)
}

variable "push_subscriptions" {
  description = "Names (not paths) of the push subscriptions to the writer, one per stream."
  type        = list(string)
}

variable "dead_letter_subscriptions" {
  description = "Names (not paths) of the dead-letter topics' subscriptions, one per stream."
  type        = list(string)
}

variable "sql_database_id" {
  description = "The Cloud SQL instance as its metrics name it: <project>:<instance>."
  type        = string
}

variable "disk_alert_utilization" {
  description = "Threshold of the Cloud SQL disk alert, a fraction of the disk."
  type        = number
  default     = 0.8
}

variable "log_metric_wait" {
  description = "Wait between creating the log-based metrics and the alert policies on them (terraform-provider-google#11102)."
  type        = string
  default     = "10m"
}

variable "notification_channels" {
  description = "Notification channels (projects/P/notificationChannels/ID) of every alert policy."
  type        = list(string)
  default     = []
}

variable "freshness_alert_seconds" {
  description = "Threshold of the freshness alert (p99 of source commit to BigQuery) and of the push backlog age alert, in seconds."
  type        = number

  validation {
    condition     = var.freshness_alert_seconds > 0
    error_message = "freshness_alert_seconds must be positive."
  }
}

variable "slot_lag_alert_bytes" {
  description = "Threshold of the slot lag alert, in bytes of WAL held back by the replication slot."
  type        = number

  validation {
    condition     = var.slot_lag_alert_bytes > 0
    error_message = "slot_lag_alert_bytes must be positive."
  }
}

variable "capture_silence_minutes" {
  description = "Minutes without a capture metrics line reporting streaming=true before the alert fires."
  type        = number

  validation {
    condition     = var.capture_silence_minutes >= 3
    error_message = "capture_silence_minutes must be at least 3."
  }
}

variable "user_labels" {
  description = "User labels of the alert policies."
  type        = map(string)
  default     = {}
}
