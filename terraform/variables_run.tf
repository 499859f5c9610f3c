# Cloud Run: capture (worker pool), the writer (service) and the MERGE schedule.

variable "capture_include" {
  description = "PG2BQ_INCLUDE: comma-separated schema.table patterns of the replicated tables (`*` and `?`; a bare schema means schema.*)."
  type        = string
  default     = "public.*"

  validation {
    condition     = length(trimspace(var.capture_include)) > 0
    error_message = "capture_include must name at least one pattern."
  }
}

variable "capture_exclude" {
  description = "PG2BQ_EXCLUDE: schema.table patterns of tables not to replicate."
  type        = string
  default     = ""
}

variable "capture_backfill" {
  description = "PG2BQ_BACKFILL: all (copy the existing rows, then stream) or none (only changes from now on)."
  type        = string
  default     = "all"

  validation {
    condition     = contains(["all", "none"], var.capture_backfill)
    error_message = "capture_backfill must be all or none."
  }
}

variable "capture_slot" {
  description = "PG2BQ_SLOT and PG2BQ_PUBLICATION: names of the logical replication slot and the publication (created by capture)."
  type        = string
  default     = "pg2bq"

  validation {
    condition     = can(regex("^[a-z0-9_]{1,63}$", var.capture_slot))
    error_message = "capture_slot must be lowercase letters, digits and '_' (a replication slot name)."
  }
}

variable "capture_compression" {
  description = "PG2BQ_COMPRESSION of message bodies: gzip (fewer Pub/Sub bytes) or none."
  type        = string
  default     = "gzip"

  validation {
    condition     = contains(["gzip", "none"], var.capture_compression)
    error_message = "capture_compression must be gzip or none."
  }
}

variable "capture_cpu" {
  description = "CPU limit of the capture instance."
  type        = string
  default     = "1"
}

variable "capture_memory" {
  description = "Memory limit of the capture instance (capture's memory is bounded by PG2BQ_MAX_UNACKED_BYTES and the batch limits)."
  type        = string
  default     = "1Gi"
}

variable "capture_env" {
  description = "More capture settings as environment variables, e.g. { PG2BQ_BATCH_MAX_ROWS = \"2000\" }. The connection, password, project and topic are set by Terraform."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.capture_env : can(regex("^[A-Z][A-Z0-9_]*$", k)) && !contains(["PG2BQ_PG_PASSWORD", "PG2BQ_PROTECT_KEY"], k)])
    error_message = "capture_env keys must be environment variable names, and never PG2BQ_PG_PASSWORD or PG2BQ_PROTECT_KEY (secrets come from Secret Manager: PG2BQ_PROTECT_KEY_SECRET names the protection key's secret)."
  }
}

variable "capture_enabled" {
  description = "Deploy capture's worker pool. Set false for a first apply with pg_password_version = 0: set the password, add it as a version of the secret, then apply with true."
  type        = bool
  default     = true
}

variable "iam_propagation_wait" {
  description = "Wait between granting the roles a Cloud Run workload needs and deploying it (IAM changes typically propagate in 2 minutes, up to 7). Only on creation and when a binding changes."
  type        = string
  default     = "120s"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.iam_propagation_wait))
    error_message = "iam_propagation_wait must be a duration in seconds or minutes, e.g. \"120s\" or \"2m\"."
  }
}

variable "worker_pool_launch_stage" {
  description = "launch_stage of the capture worker pool. BETA lets the API accept worker pools and their manual scaling while they are in preview; GA once they are generally available in your region."
  type        = string
  default     = "BETA"

  validation {
    condition     = contains(["GA", "BETA"], var.worker_pool_launch_stage)
    error_message = "worker_pool_launch_stage must be GA or BETA."
  }
}

variable "writer_ingress" {
  description = "Ingress of the writer. INGRESS_TRAFFIC_INTERNAL_ONLY (default): Pub/Sub push and Cloud Scheduler of the same project count as internal. Use INGRESS_TRAFFIC_ALL only if push comes from another project without a shared VPC Service Controls perimeter; the writer still admits only the push and scheduler service accounts (Cloud Run IAM plus its own OIDC check)."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_ALL"], var.writer_ingress)
    error_message = "writer_ingress must be INGRESS_TRAFFIC_INTERNAL_ONLY, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER or INGRESS_TRAFFIC_ALL."
  }
}

variable "writer_min_instances" {
  description = "Fewest writer instances (0 scales to zero when no changes flow; 1 avoids cold starts)."
  type        = number
  default     = 0

  validation {
    condition     = var.writer_min_instances >= 0
    error_message = "writer_min_instances must be 0 or more."
  }
}

variable "writer_max_instances" {
  description = "Most writer instances; with writer_concurrency it caps concurrent pushes and BigQuery connections."
  type        = number
  default     = 10

  validation {
    condition     = var.writer_max_instances >= 1 && var.writer_max_instances <= 1000
    error_message = "writer_max_instances must be between 1 and 1000."
  }
}

variable "writer_concurrency" {
  description = "Concurrent push requests per writer instance (each waits mostly on BigQuery). Memory must hold this many batches at once: see writer_memory."
  type        = number
  default     = 16

  validation {
    condition     = var.writer_concurrency >= 1 && var.writer_concurrency <= 1000
    error_message = "writer_concurrency must be between 1 and 1000."
  }
}

variable "writer_cpu" {
  description = "CPU limit of a writer instance."
  type        = string
  default     = "1"
}

variable "writer_memory" {
  description = "Memory limit of a writer instance, in Mi or Gi. Sizing rule (terraform/README.md, measured): 64 MiB + writer_concurrency x 12 x capture's PG2BQ_BATCH_MAX_BYTES; 1Gi holds 16 pushes of the default 4 MB batches. The writer service refuses a smaller value."
  type        = string
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.writer_memory))
    error_message = "writer_memory must be a whole number of Mi or Gi, e.g. \"1Gi\" or \"768Mi\"."
  }
}

variable "writer_timeout_seconds" {
  description = "Request timeout of the writer (a push, a /merge). At most pubsub_ack_deadline_seconds, so that Pub/Sub never redelivers a push that is still running; the staged MERGE's scheduler waits as long."
  type        = number
  default     = 600

  validation {
    condition     = var.writer_timeout_seconds >= 60 && var.writer_timeout_seconds <= var.pubsub_ack_deadline_seconds
    error_message = "writer_timeout_seconds must be between 60 and pubsub_ack_deadline_seconds."
  }
}

variable "write_mode" {
  description = "PG2BQ_WRITE_MODE: merge (tables mirror the source) or append-only (every change is a row)."
  type        = string
  default     = "merge"

  validation {
    condition     = contains(["merge", "append-only"], var.write_mode)
    error_message = "write_mode must be merge or append-only."
  }
}

variable "merge_strategy" {
  description = "PG2BQ_MERGE_STRATEGY of merge mode: staged (change tables folded by a scheduled MERGE; exact TRUNCATE), native (BigQuery CDC, no MERGE job) or auto (= staged)."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "staged", "native"], var.merge_strategy)
    error_message = "merge_strategy must be auto, staged or native."
  }
}

variable "max_staleness_secs" {
  description = "PG2BQ_MAX_STALENESS_SECS: max_staleness of native CDC tables."
  type        = number
  default     = 900

  validation {
    condition     = var.max_staleness_secs >= 0
    error_message = "max_staleness_secs must be 0 or more."
  }
}

variable "writer_env" {
  description = "More writer settings as environment variables, e.g. { RUST_LOG = \"debug\" }."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.writer_env : can(regex("^[A-Z][A-Z0-9_]*$", k)) && k != "PORT"])
    error_message = "writer_env keys must be environment variable names other than PORT (Cloud Run sets it)."
  }
}

variable "merge_schedule" {
  description = "Cloud Scheduler cron schedule of the staged MERGE (POST /merge), at most once a minute. Used only with the staged strategy."
  type        = string
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.merge_schedule))) == 5
    error_message = "merge_schedule must be a five-field cron expression, e.g. \"*/5 * * * *\"."
  }
}

variable "merge_round_seconds" {
  description = "How long one /merge round starts and waits for MERGEs; tables left over are merged by the next run (nothing fails). Less than writer_timeout_seconds; below the schedule's period, so that runs do not queue."
  type        = number
  default     = 50

  validation {
    condition     = var.merge_round_seconds >= 5 && var.merge_round_seconds < var.writer_timeout_seconds
    error_message = "merge_round_seconds must be at least 5 and less than writer_timeout_seconds."
  }
}

variable "merge_parallelism" {
  description = "How many tables one /merge round merges at once (BigQuery runs each table's MERGE as its own job)."
  type        = number
  default     = 4

  validation {
    condition     = var.merge_parallelism >= 1 && var.merge_parallelism <= 64
    error_message = "merge_parallelism must be between 1 and 64."
  }
}

variable "merge_time_zone" {
  description = "Time zone of merge_schedule."
  type        = string
  default     = "Etc/UTC"
}
