# Pub/Sub: the changes topic, the push subscription to the writer and the dead-letter topic.

variable "pubsub_ack_deadline_seconds" {
  description = "How long Pub/Sub waits for the writer's answer to a push before it retries (10 to 600 s); for push it is the request timeout. It must be at least writer_timeout_seconds, or a slow push is delivered again while it still runs. The writer answers after BigQuery has acknowledged the rows."
  type        = number
  default     = 600

  validation {
    condition     = var.pubsub_ack_deadline_seconds >= 10 && var.pubsub_ack_deadline_seconds <= 600
    error_message = "pubsub_ack_deadline_seconds must be between 10 and 600."
  }
}

variable "pubsub_push_subscription_name" {
  description = "Name of the push subscription (null: <prefix>-changes-push). Give it a new name to replace the subscription without a gap: the new one is created before the old one is deleted (terraform/README.md)."
  type        = string
  default     = null

  validation {
    condition     = var.pubsub_push_subscription_name == null || can(regex("^[a-zA-Z][a-zA-Z0-9._~%+-]{2,254}$", var.pubsub_push_subscription_name))
    error_message = "pubsub_push_subscription_name must be a Pub/Sub subscription name (3 to 255 characters, starting with a letter)."
  }
}

variable "pubsub_topic_retention" {
  description = "How long the changes topic keeps every published message (\"600s\" to \"2678400s\", 31 days), acknowledged or not, so that a new or replaced subscription can seek back into it."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.pubsub_topic_retention)) && try(tonumber(trimsuffix(var.pubsub_topic_retention, "s")) >= 600 && tonumber(trimsuffix(var.pubsub_topic_retention, "s")) <= 2678400, false)
    error_message = "pubsub_topic_retention must be between \"600s\" and \"2678400s\"."
  }
}

variable "pubsub_min_backoff" {
  description = "Shortest wait before Pub/Sub redelivers a nacked push (a duration such as \"10s\"; 0s to 600s)."
  type        = string
  default     = "10s"

  validation {
    condition     = try(tonumber(trimsuffix(var.pubsub_min_backoff, "s")) <= 600, false) && can(regex("^[0-9]+s$", var.pubsub_min_backoff))
    error_message = "pubsub_min_backoff must be a whole number of seconds such as \"10s\", at most 600s."
  }
}

variable "pubsub_max_backoff" {
  description = "Longest wait before Pub/Sub redelivers a nacked push (a duration such as \"600s\"; at most 600s)."
  type        = string
  default     = "300s"

  validation {
    condition     = try(tonumber(trimsuffix(var.pubsub_max_backoff, "s")) <= 600, false) && can(regex("^[0-9]+s$", var.pubsub_max_backoff))
    error_message = "pubsub_max_backoff must be a whole number of seconds such as \"300s\", at most 600s."
  }
}

variable "pubsub_message_retention" {
  description = "How long the push subscription keeps unacknowledged messages (\"600s\" to \"2678400s\", 31 days; beyond 24 hours Pub/Sub bills the backlog's storage). Every failed push is retried for this long: it is the longest outage of BigQuery, of the writer or of its permissions that ends with every change applied."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.pubsub_message_retention)) && try(tonumber(trimsuffix(var.pubsub_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.pubsub_message_retention, "s")) <= 2678400, false)
    error_message = "pubsub_message_retention must be between \"600s\" and \"2678400s\"."
  }
}

variable "pubsub_dead_letter_retention" {
  description = "How long the dead-letter subscription keeps what it received, acknowledged or not (\"600s\" to \"2678400s\", 31 days, Pub/Sub's maximum and the default): the time to fix the cause and run `pg2bq deadletter replay`, and to seek back after a replay or an acknowledgement. claim_object_max_age_days must cover it."
  type        = string
  default     = "2678400s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.pubsub_dead_letter_retention)) && try(tonumber(trimsuffix(var.pubsub_dead_letter_retention, "s")) >= 600 && tonumber(trimsuffix(var.pubsub_dead_letter_retention, "s")) <= 2678400, false)
    error_message = "pubsub_dead_letter_retention must be between \"600s\" and \"2678400s\"."
  }
}

variable "deadletter_operators" {
  description = "Principals who run `pg2bq deadletter list|replay` (and `pg2bq quarantine retry`), such as \"group:data-oncall@example.com\" or \"user:ana@example.com\": they may pull, acknowledge and seek the dead-letter subscription (roles/pubsub.subscriber on it) and publish to the changes topic (roles/pubsub.publisher on it), nothing else. Empty: grant them yourself."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.deadletter_operators : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))])
    error_message = "Each of deadletter_operators must be an IAM principal such as \"user:ana@example.com\", \"group:oncall@example.com\" or \"serviceAccount:ops@my-project.iam.gserviceaccount.com\"."
  }
}

variable "pubsub_kms_key_name" {
  description = "Cloud KMS key that encrypts the topics (CMEK); null uses Google-managed keys. The Pub/Sub service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null

  validation {
    condition     = var.pubsub_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.pubsub_kms_key_name))
    error_message = "pubsub_kms_key_name must be a key name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}
