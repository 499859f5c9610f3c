# Project, naming, images and protection. The other variables_*.tf files hold one area each.

variable "project_id" {
  description = "Google Cloud project that receives every resource (Cloud SQL, Pub/Sub, BigQuery, Cloud Run, monitoring)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6 to 30 lowercase letters, digits and hyphens), not a project number or name."
  }
}

variable "region" {
  description = "Region of Cloud SQL, Cloud Run, the network and Cloud Scheduler, e.g. europe-west1."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (services, topic, instance, service accounts); lets several deployments share a project."
  type        = string
  default     = "pg2bq"

  validation {
    # Service account IDs are "<prefix>-capture" etc. and must stay within 30 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2 to 20 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels (app=pg2bq and managed-by=terraform are always set)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "Label keys must start with a lowercase letter; keys and values use lowercase letters, digits, '_' and '-' (at most 63 characters)."
  }
}

variable "capture_image" {
  description = "Container image of capture (built by `make image`), e.g. us-central1-docker.pkg.dev/PROJECT/pg2bq/capture:TAG. Pin a tag or digest."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[^ ]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.capture_image)) && !endswith(var.capture_image, ":latest")
    error_message = "capture_image must be a full image reference with an explicit tag (not :latest) or a digest."
  }
}

variable "writer_image" {
  description = "Container image of the writer (built by `make image`), e.g. us-central1-docker.pkg.dev/PROJECT/pg2bq/writer:TAG. Pin a tag or digest."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[^ ]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.writer_image)) && !endswith(var.writer_image, ":latest")
    error_message = "writer_image must be a full image reference with an explicit tag (not :latest) or a digest."
  }
}

variable "deletion_protection" {
  description = "Protects the Cloud SQL instance and the Cloud Run services from `terraform destroy`. Set to false and apply before tearing down."
  type        = bool
  default     = true
}
