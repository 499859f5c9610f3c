# Claim checks: the bucket of change batches too big for a Pub/Sub message (claim_check.tf).

variable "claim_object_max_age_days" {
  description = "Days after which the claim bucket's lifecycle rule deletes an object the writer did not. Must exceed pubsub_message_retention plus pubsub_dead_letter_retention (7 + 31 days by default), the longest a message can wait before it is written or replayed: the writer takes a missing object for a batch already written."
  type        = number
  default     = 40

  validation {
    condition     = var.claim_object_max_age_days >= 2 && var.claim_object_max_age_days <= 365 && floor(var.claim_object_max_age_days) == var.claim_object_max_age_days
    error_message = "claim_object_max_age_days must be a whole number of days from 2 to 365."
  }
}

variable "claim_kms_key_name" {
  description = "Cloud KMS key that encrypts claim-check objects (CMEK); null uses Google-managed keys. The Cloud Storage service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null

  validation {
    condition     = var.claim_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.claim_kms_key_name))
    error_message = "claim_kms_key_name must be a key name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}
