# The replication user's password in Secret Manager.

ephemeral "random_password" "pg" {
  count = var.pg_password_version > 0 ? 1 : 0

  length  = 32
  special = false
}

resource "google_secret_manager_secret" "pg_password" {
  secret_id = local.names.password
  labels    = { component = "capture" }

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "pg_password" {
  count = var.pg_password_version > 0 ? 1 : 0

  secret = google_secret_manager_secret.pg_password.id
  # Write-only: the generated password is never in the state. A new pg_password_version writes a
  # new version (capture reads "latest" when its instance starts).
  secret_data_wo         = ephemeral.random_password.pg[0].result
  secret_data_wo_version = var.pg_password_version
}
