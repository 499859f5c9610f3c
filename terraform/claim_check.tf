# Claim checks: a change batch too big for a Pub/Sub message (10 MB) waits in this bucket. capture
# writes the object, then publishes a message that names it; the writer reads the object, writes
# the batch and deletes the object. Objects live minutes; the lifecycle rule removes any that a
# writer could not delete.
#
# The rule's age must exceed how long a message can wait for the writer (the push subscription's
# retention, plus the dead-letter subscription's, until `pg2bq deadletter replay`): the writer
# takes a missing object for a batch already written (README, "Big changes").

locals {
  claim_bucket = "${var.project_id}-${var.name_prefix}-claims"
}

resource "google_storage_bucket" "claims" {
  #checkov:skip=CKV_GCP_78:Objects are written once and deleted once read; versions would only keep deleted change data.
  #checkov:skip=CKV_GCP_62:Access logs of transient objects add cost and no audit value; Cloud Audit Logs cover administrative access.
  name     = local.claim_bucket
  location = var.region
  labels   = { component = "transport" }

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # The objects are transient copies of change batches; nothing in them is kept anywhere else
  # for long, and a destroy must not stop on them.
  force_destroy = true

  # A deleted object is gone at once, not kept (and billed) for the default 7 days.
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  lifecycle_rule {
    condition {
      age = var.claim_object_max_age_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = var.claim_kms_key_name == null ? [] : [var.claim_kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle {
    precondition {
      condition     = var.claim_object_max_age_days * 86400 > tonumber(trimsuffix(var.pubsub_message_retention, "s")) + tonumber(trimsuffix(var.pubsub_dead_letter_retention, "s"))
      error_message = "claim_object_max_age_days must exceed pubsub_message_retention plus pubsub_dead_letter_retention: a message, dead-lettered or not, must never outlive its object."
    }
  }
}

# capture creates objects (never overwrites, reads or deletes them).
resource "google_storage_bucket_iam_member" "capture_claim_creator" {
  bucket = google_storage_bucket.claims.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.capture.member
}

# The writer reads objects and deletes them once written; it may not create or list them.
resource "google_project_iam_custom_role" "claim_reader" {
  role_id     = replace("${var.name_prefix}_claim_reader", "-", "_")
  title       = "pg2bq claim-check reader"
  description = "Read and delete claim-check objects (the pg2bq writer, on the claim bucket only)."
  permissions = ["storage.objects.get", "storage.objects.delete"]
}

resource "google_storage_bucket_iam_member" "writer_claim_reader" {
  bucket = google_storage_bucket.claims.name
  role   = google_project_iam_custom_role.claim_reader.id
  member = google_service_account.writer.member
}

output "claim_bucket" {
  description = "Cloud Storage bucket of claim checks (change batches too big for a Pub/Sub message)."
  value       = google_storage_bucket.claims.name
}
