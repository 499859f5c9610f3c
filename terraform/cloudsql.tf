# Cloud SQL for PostgreSQL with logical decoding, its database and the replication user.

resource "google_sql_database_instance" "pg" {
  #checkov:skip=CKV_GCP_60:A public IP exists only with sql_ip_mode = "public", chosen on purpose; it has no authorized networks and connector_enforcement = REQUIRED with client certificates, so only IAM-authorized Cloud SQL connectors can connect. The default is private.
  #checkov:skip=CKV_GCP_79:The major version is the variable sql_database_version (default POSTGRES_17, any 14+ works); choose the newest that Cloud SQL offers in your region.
  #checkov:skip=CKV2_GCP_13:log_duration logs a line for every statement of the source application, a cost and load that a replicated OLTP database should not carry; slow statements show in Query Insights.
  name                = local.names.sql
  region              = var.region
  database_version    = var.sql_database_version
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.sql_tier
    edition           = var.sql_edition
    availability_type = var.sql_availability_type
    disk_size         = var.sql_disk_size_gb
    disk_autoresize   = true
    # The ceiling of automatic growth: WAL held by a stalled replication slot grows the disk up to
    # here and no further (Cloud SQL has no max_slot_wal_keep_size; see terraform/README.md).
    disk_autoresize_limit       = var.sql_disk_autoresize_limit_gb
    deletion_protection_enabled = var.deletion_protection
    # Only the Cloud SQL connectors may connect (capture's Auth Proxy sidecar, cloud-sql-proxy on
    # an operator's machine): each connection is authorized by IAM and encrypted with mTLS.
    connector_enforcement = "REQUIRED"
    user_labels           = merge(local.labels, { component = "source" })

    ip_configuration {
      ipv4_enabled    = !local.private_ip
      private_network = local.private_ip ? google_compute_network.this[0].id : null
      # Client certificates required: the connectors present short-lived ones of their own.
      ssl_mode = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
      # No authorized networks: in public mode the connectors are the only way in.
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "03:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 7
      }
    }

    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled = true
    }

    # What pg2bq needs: logical decoding (wal_level=logical). Cloud SQL does not accept
    # max_slot_wal_keep_size (Datastream's "Work with PostgreSQL WAL files" page), so WAL held by
    # a stalled slot is bounded by disk_autoresize_limit and watched by the slot-lag and disk
    # alerts instead (terraform/README.md, "WAL held by the slot").
    database_flags {
      name  = "cloudsql.logical_decoding"
      value = "on"
    }

    # Logging of connections, locks, errors and DDL (CIS benchmark; checkov's Cloud SQL checks).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }

    dynamic "database_flags" {
      for_each = var.sql_extra_flags
      content {
        name  = database_flags.key
        value = database_flags.value
      }
    }
  }

  depends_on = [google_service_networking_connection.sql]
}

resource "google_sql_database" "app" {
  name     = var.pg_database
  instance = google_sql_database_instance.pg.name
}

# The replication user. Cloud SQL sets its password through the API (it never passes through SQL
# or the server's logs). google_sql_user cannot give it the REPLICATION attribute nor take away
# what Cloud SQL gives every user it creates (cloudsqlsuperuser, CREATEROLE, CREATEDB): the
# setup job does both (sql_setup.tf).
resource "google_sql_user" "replicator" {
  name     = var.pg_replication_user
  instance = google_sql_database_instance.pg.name
  type     = "BUILT_IN"

  # Write-only: the password never enters the state or the plan.
  password_wo         = var.pg_password_version > 0 ? ephemeral.random_password.pg[0].result : null
  password_wo_version = var.pg_password_version > 0 ? var.pg_password_version : null

  # Keep the user when the instance is being destroyed anyway (PostgreSQL would refuse to drop a
  # role that owns objects).
  deletion_policy = "ABANDON"
}
