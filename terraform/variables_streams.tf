# Several streams in one deployment, sharing one writer service.

variable "streams" {
  description = <<-EOT
    Streams of this deployment, by name (lowercase letters, digits and '-'). Each gets its own
    topic, push subscription (to the writer's /push/<name>), dead-letter topic and subscription,
    and capture worker pool; all share the writer service, its MERGE schedule and the Cloud SQL
    instance (or name another instance by connection name). Empty (the default): one stream from
    the capture_* variables, pg_database and the bq_* variables, with the resource names of a
    one-stream deployment. Fields left null take those variables' values; the slot (and
    publication) defaults to <capture_slot>_<name>, the dataset prefix to <bq_dataset_prefix><name>_.
  EOT
  type = map(object({
    instance       = optional(string)
    database       = optional(string)
    slot           = optional(string)
    include        = optional(string)
    exclude        = optional(string)
    backfill       = optional(string)
    partitions     = optional(string, "root")
    dataset_prefix = optional(string)
    soft_deletes   = optional(bool, false)
    capture_env    = optional(map(string), {})
  }))
  default = {}

  validation {
    condition     = alltrue([for name, _ in var.streams : can(regex("^[a-z][a-z0-9-]{0,19}$", name))])
    error_message = "Stream names are 1 to 20 lowercase letters, digits and '-', starting with a letter (they go into resource names)."
  }

  validation {
    condition     = alltrue([for _, s in var.streams : contains(["root", "leaves"], s.partitions)])
    error_message = "A stream's partitions is root or leaves."
  }

  validation {
    condition     = alltrue([for _, s in var.streams : s.slot == null || can(regex("^[a-z0-9_]{1,63}$", coalesce(s.slot, "x")))])
    error_message = "A stream's slot must be lowercase letters, digits and '_' (a replication slot name)."
  }

  validation {
    condition     = alltrue([for _, s in var.streams : s.backfill == null || contains(["all", "none"], coalesce(s.backfill, "all"))])
    error_message = "A stream's backfill must be all or none."
  }
}
