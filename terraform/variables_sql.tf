# Cloud SQL for PostgreSQL, the network path to it and the replication user.

variable "sql_ip_mode" {
  description = "\"private\": the instance has only a private IP (private services access), reached over Direct VPC egress. \"public\": a public IP without authorized networks. Either way only Cloud SQL connectors may connect: capture through its Cloud SQL Auth Proxy sidecar."
  type        = string
  default     = "private"

  validation {
    condition     = contains(["private", "public"], var.sql_ip_mode)
    error_message = "sql_ip_mode must be \"private\" or \"public\"."
  }
}

variable "network_cidr" {
  description = "CIDR of the subnet that capture's Direct VPC egress uses (private mode). /26 or larger, per Cloud Run's guidance."
  type        = string
  default     = "10.20.0.0/24"

  validation {
    condition     = can(cidrhost(var.network_cidr, 0)) && try(tonumber(split("/", var.network_cidr)[1]) <= 26, false)
    error_message = "network_cidr must be an IPv4 CIDR of size /26 or larger."
  }
}

variable "sql_peering_prefix_length" {
  description = "Prefix length of the range reserved for private services access (Cloud SQL's private IPs), private mode."
  type        = number
  default     = 20

  validation {
    condition     = var.sql_peering_prefix_length >= 16 && var.sql_peering_prefix_length <= 24
    error_message = "sql_peering_prefix_length must be between 16 and 24."
  }
}

variable "sql_database_version" {
  description = "Cloud SQL PostgreSQL version (pg2bq needs 14 or later)."
  type        = string
  default     = "POSTGRES_17"

  validation {
    condition     = can(regex("^POSTGRES_(1[4-9])$", var.sql_database_version))
    error_message = "sql_database_version must be POSTGRES_14 or later, e.g. POSTGRES_16."
  }
}

variable "sql_edition" {
  description = "Cloud SQL edition: ENTERPRISE or ENTERPRISE_PLUS (the tier must belong to it)."
  type        = string
  default     = "ENTERPRISE"

  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.sql_edition)
    error_message = "sql_edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "sql_tier" {
  description = "Machine tier of the instance, e.g. db-custom-1-3840 (1 vCPU, 3.75 GB) or db-perf-optimized-N-2 for Enterprise Plus."
  type        = string
  default     = "db-custom-1-3840"

  validation {
    condition     = can(regex("^db-[a-z0-9-]+$", var.sql_tier))
    error_message = "sql_tier must be a Cloud SQL tier name such as db-custom-2-7680."
  }
}

variable "sql_availability_type" {
  description = "ZONAL, or REGIONAL for a high-availability standby in another zone."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.sql_availability_type)
    error_message = "sql_availability_type must be ZONAL or REGIONAL."
  }
}

variable "sql_disk_size_gb" {
  description = "Initial disk size in GB. It grows automatically up to sql_disk_autoresize_limit_gb."
  type        = number
  default     = 50

  validation {
    condition     = var.sql_disk_size_gb >= 10
    error_message = "sql_disk_size_gb must be at least 10."
  }
}

variable "sql_disk_autoresize_limit_gb" {
  description = "Largest size in GB that automatic storage increase may grow the disk to (0: no limit). It is what bounds the WAL a stalled replication slot holds, since Cloud SQL has no max_slot_wal_keep_size: past it the disk fills and the instance stops accepting writes, so the slot-lag and disk alerts fire well before (terraform/README.md, \"WAL held by the slot\")."
  type        = number
  default     = 500

  validation {
    condition     = var.sql_disk_autoresize_limit_gb == 0 || var.sql_disk_autoresize_limit_gb >= var.sql_disk_size_gb * 2
    error_message = "sql_disk_autoresize_limit_gb must be 0 (no limit) or at least twice sql_disk_size_gb, to leave room for WAL held while an alert is handled."
  }
}

variable "sql_extra_flags" {
  description = "More database flags of the instance, name => value, e.g. { max_replication_slots = \"20\" }. Only flags that Cloud SQL supports for sql_database_version (gcloud sql flags list --database-version=...); max_slot_wal_keep_size is not one of them."
  type        = map(string)
  default     = {}

  validation {
    condition = length(setintersection(keys(var.sql_extra_flags), [
      "cloudsql.logical_decoding", "log_checkpoints", "log_connections",
      "log_disconnections", "log_lock_waits", "log_hostname", "log_min_messages",
      "log_min_error_statement", "log_statement", "log_temp_files", "log_min_duration_statement",
      "cloudsql.enable_pgaudit",
    ])) == 0
    error_message = "sql_extra_flags must not repeat a flag that cloudsql.tf sets."
  }

  validation {
    # Cloud SQL rejects the instance (and so everything after it) for a flag it does not support.
    condition     = !contains(keys(var.sql_extra_flags), "max_slot_wal_keep_size")
    error_message = "Cloud SQL does not support max_slot_wal_keep_size; WAL held by the slot is bounded by sql_disk_autoresize_limit_gb and the alerts (terraform/README.md)."
  }
}

variable "pg_database" {
  description = "Database created on the instance and replicated by capture."
  type        = string
  default     = "app"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.pg_database))
    error_message = "pg_database must be a lowercase PostgreSQL identifier."
  }
}

variable "pg_replication_user" {
  description = "PostgreSQL user capture connects as. Terraform creates it; the sql-setup job gives it REPLICATION and read access to source_schemas and takes away what Cloud SQL gives every user it creates (README, Deploy to GCP)."
  type        = string
  default     = "pg2bq_replicator"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.pg_replication_user))
    error_message = "pg_replication_user must be a lowercase PostgreSQL identifier."
  }
}

variable "pg_password_version" {
  description = "Version of the replication user's password. Terraform generates the password as an ephemeral value and writes it write-only to the user and to Secret Manager, so it is never in the state; increase this number to rotate it. 0: Terraform sets no password; set it yourself (gcloud sql users set-password) and add the same value as a version of the secret."
  type        = number
  default     = 1

  validation {
    condition     = var.pg_password_version >= 0 && floor(var.pg_password_version) == var.pg_password_version
    error_message = "pg_password_version must be a whole number, 0 or more."
  }
}

variable "cloud_sql_proxy_image" {
  description = "Image of capture's Cloud SQL Auth Proxy sidecar."
  type        = string
  default     = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.18.2"

  validation {
    condition     = !endswith(var.cloud_sql_proxy_image, ":latest") && can(regex("(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.cloud_sql_proxy_image))
    error_message = "cloud_sql_proxy_image must have an explicit version tag or digest."
  }
}

variable "operator_ssh_via_iap" {
  description = "Private mode: allow SSH through Identity-Aware Proxy (35.235.240.0/20) to VMs tagged pg2bq-operator in the capture subnet, for running the lab next to the private IP (README, Deploy to GCP). The one-time SQL needs no VM: it is the sql-setup job. Otherwise the network admits no ingress."
  type        = bool
  default     = false
}

variable "sql_setup_job" {
  description = "Create the Cloud Run job <prefix>-sql-setup, which runs the one-time SQL (sql/setup.sql.tftpl) through the Cloud SQL Auth Proxy as the user pg_setup_user. Run it once after the first apply: gcloud run jobs execute <prefix>-sql-setup --region <region> --wait. false: no job, no setup user and no setup secret (run the SQL yourself)."
  type        = bool
  default     = true
}

variable "pg_setup_user" {
  description = "Built-in PostgreSQL user that the sql-setup job connects as. Terraform creates it (a member of cloudsqlsuperuser, like every user Cloud SQL creates) with a generated password that only the job's service account can read."
  type        = string
  default     = "pg2bq_setup"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.pg_setup_user))
    error_message = "pg_setup_user must be a lowercase PostgreSQL identifier."
  }
}

variable "sql_setup_image" {
  description = "Image with psql (15 or later, for \\getenv) and a POSIX shell with wget, run by the sql-setup job."
  type        = string
  default     = "postgres:17-alpine"

  validation {
    condition     = !endswith(var.sql_setup_image, ":latest") && can(regex("(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.sql_setup_image))
    error_message = "sql_setup_image must have an explicit version tag or digest."
  }
}
