# BigQuery: the datasets the writer fills.

variable "bq_location" {
  description = "Location of the BigQuery datasets (PG2BQ_BQ_LOCATION), e.g. US, EU or a region."
  type        = string
  default     = "US"

  validation {
    condition     = can(regex("^(US|EU|[a-z]+-[a-z]+[0-9]+)$", var.bq_location))
    error_message = "bq_location must be US, EU or a region such as europe-west1."
  }
}

variable "source_schemas" {
  description = "PostgreSQL schemas whose tables are replicated: Terraform creates a dataset `<bq_dataset_prefix><schema>` for each. The writer creates datasets of other schemas itself."
  type        = list(string)
  default     = ["public"]

  validation {
    condition     = alltrue([for s in var.source_schemas : can(regex("^[A-Za-z0-9_]+$", s))])
    error_message = "source_schemas must be schema names made of letters, digits and '_' (BigQuery dataset names)."
  }
}

variable "bq_dataset_prefix" {
  description = "Prefix of the per-schema datasets (PG2BQ_BQ_DATASET_PREFIX)."
  type        = string
  default     = "pg_"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]*$", var.bq_dataset_prefix))
    error_message = "bq_dataset_prefix may contain only letters, digits and '_'."
  }
}

variable "bq_dataset" {
  description = "One dataset for every table, named `<schema>_<table>` (PG2BQ_BQ_DATASET). Empty: a dataset per schema."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_]*$", var.bq_dataset)) && length(var.bq_dataset) <= 1024
    error_message = "bq_dataset may contain only letters, digits and '_'."
  }
}

variable "bq_delete_contents_on_destroy" {
  description = "Whether `terraform destroy` deletes the datasets with their tables. Keep false unless the data is disposable."
  type        = bool
  default     = false
}

variable "bq_kms_key_name" {
  description = "Cloud KMS key of the datasets' default encryption (CMEK); null uses Google-managed keys. The BigQuery service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null

  validation {
    condition     = var.bq_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.bq_kms_key_name))
    error_message = "bq_kms_key_name must be a key name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}
