# The one-time SQL, as a Cloud Run job: no operator VM, no state needed where it runs.
#
# The job runs psql next to a Cloud SQL Auth Proxy sidecar (private IP over Direct VPC egress in
# private mode), as the built-in user pg_setup_user, whose generated password only the job's
# service account can read. Run it after the first apply, and again after source_schemas change:
#   gcloud run jobs execute <prefix>-sql-setup --region <region> --wait
# The SQL is sql/setup.sql.tftpl: it gives the replication user REPLICATION and read access to the
# source schemas, and takes away what Cloud SQL gives every user it creates. It is idempotent.

locals {
  setup_enabled = var.sql_setup_job
  setup_sql = templatefile("${path.module}/sql/setup.sql.tftpl", {
    database   = var.pg_database
    replicator = var.pg_replication_user
    schemas    = var.source_schemas
  })
  # psql waits for the proxy, runs the SQL, then stops the proxy (/quitquitquit) so that the task
  # ends whether or not Cloud Run waits for sidecars.
  setup_script = <<-EOT
    set -u
    i=0
    until pg_isready -q -h 127.0.0.1 -p 5432; do
      i=$((i + 1)); [ "$i" -ge 60 ] && echo "the Cloud SQL Auth Proxy did not start" >&2 && exit 1
      sleep 1
    done
    printf '%s\n' "$PG2BQ_SETUP_SQL" | psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U "$PGUSER" -d "$PGDATABASE"
    rc=$?
    wget -q -O /dev/null http://127.0.0.1:9091/quitquitquit || true
    exit $rc
  EOT
}

resource "google_service_account" "sql_setup" {
  count = local.setup_enabled ? 1 : 0

  account_id   = "${var.name_prefix}-sql-setup"
  display_name = "pg2bq one-time SQL"
  description  = "Runs the sql-setup job: reads the setup user's password, connects to Cloud SQL through the Auth Proxy."
}

ephemeral "random_password" "pg_setup" {
  count = local.setup_enabled ? 1 : 0

  length  = 32
  special = false
}

# A built-in user for the job (Cloud SQL makes it a member of cloudsqlsuperuser, which may give
# REPLICATION and create roles). Its password is write-only: never in the state or the plan.
resource "google_sql_user" "setup" {
  count = local.setup_enabled ? 1 : 0

  name                = var.pg_setup_user
  instance            = google_sql_database_instance.pg.name
  type                = "BUILT_IN"
  password_wo         = ephemeral.random_password.pg_setup[0].result
  password_wo_version = 1
}

resource "google_secret_manager_secret" "pg_setup_password" {
  count = local.setup_enabled ? 1 : 0

  secret_id = "${local.names.password}-setup"
  labels    = { component = "sql-setup" }

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "pg_setup_password" {
  count = local.setup_enabled ? 1 : 0

  secret                 = google_secret_manager_secret.pg_setup_password[0].id
  secret_data_wo         = ephemeral.random_password.pg_setup[0].result
  secret_data_wo_version = 1
}

resource "google_secret_manager_secret_iam_member" "sql_setup_password" {
  count = local.setup_enabled ? 1 : 0

  secret_id = google_secret_manager_secret.pg_setup_password[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sql_setup[0].member
}

resource "google_project_iam_member" "sql_setup_sql_client" {
  count = local.setup_enabled ? 1 : 0

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.sql_setup[0].member

  condition {
    title       = "only-${local.names.sql}"
    description = "Only the pg2bq source instance."
    expression  = "resource.name == \"projects/${var.project_id}/instances/${google_sql_database_instance.pg.name}\" && resource.service == \"sqladmin.googleapis.com\""
  }
}

# IAM is eventually consistent (typically 2 minutes, up to 7: IAM "Access change propagation"):
# Cloud Run checks at deployment that the job's identity can read its secret.
resource "time_sleep" "sql_setup_iam" {
  count = local.setup_enabled ? 1 : 0

  create_duration = var.iam_propagation_wait
  triggers = {
    secret = google_secret_manager_secret_iam_member.sql_setup_password[0].etag
    sql    = google_project_iam_member.sql_setup_sql_client[0].etag
  }

  depends_on = [google_secret_manager_secret_version.pg_setup_password]
}

resource "google_cloud_run_v2_job" "sql_setup" {
  count = local.setup_enabled ? 1 : 0

  name                = "${var.name_prefix}-sql-setup"
  location            = var.region
  deletion_protection = false
  labels              = { component = "sql-setup" }

  template {
    task_count  = 1
    parallelism = 1
    labels      = { component = "sql-setup" }

    template {
      service_account = google_service_account.sql_setup[0].email
      timeout         = "600s"
      max_retries     = 0

      containers {
        name       = "psql"
        image      = var.sql_setup_image
        command    = ["/bin/sh", "-c"]
        args       = [local.setup_script]
        depends_on = ["cloud-sql-proxy"]

        env {
          name  = "PG2BQ_SETUP_SQL"
          value = local.setup_sql
        }
        env {
          name  = "PGUSER"
          value = var.pg_setup_user
        }
        env {
          name  = "PGDATABASE"
          value = var.pg_database
        }
        env {
          # The proxy encrypts the hop to Cloud SQL; this one stays inside the task.
          name  = "PGSSLMODE"
          value = "disable"
        }
        env {
          name = "PGPASSWORD"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.pg_setup_password[0].secret_id
              version = "latest"
            }
          }
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }
      }

      containers {
        name  = "cloud-sql-proxy"
        image = var.cloud_sql_proxy_image
        # GET or POST localhost:9091/quitquitquit stops the proxy when psql is done.
        args = concat(["--quitquitquit"], local.cloud_sql_proxy_args)

        resources {
          limits = {
            cpu    = "1"
            memory = "256Mi"
          }
        }
      }

      dynamic "vpc_access" {
        for_each = local.private_ip ? [1] : []
        content {
          egress = "PRIVATE_RANGES_ONLY"
          network_interfaces {
            network    = google_compute_network.this[0].id
            subnetwork = google_compute_subnetwork.capture[0].id
          }
        }
      }
    }
  }

  depends_on = [
    google_sql_user.setup,
    google_sql_user.replicator,
    google_sql_database.app,
    time_sleep.sql_setup_iam,
  ]
}
