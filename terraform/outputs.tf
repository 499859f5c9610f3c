output "writer_url" {
  description = "URL of the writer service (internal ingress: reachable from Pub/Sub, Cloud Scheduler and the VPC)."
  value       = google_cloud_run_v2_service.writer.uri
}

output "capture_worker_pool" {
  description = "Name of capture's Cloud Run worker pool (logs: gcloud run worker-pools logs read <name> --region <region>)."
  value       = try(google_cloud_run_v2_worker_pool.capture["default"].name, null)
}

output "topic" {
  description = "Pub/Sub topic of the change batches (PG2BQ_TOPIC)."
  value       = try(google_pubsub_topic.changes["default"].name, null)
}

output "push_subscription" {
  description = "Push subscription that delivers the change batches to the writer."
  value       = try(google_pubsub_subscription.push["default"].name, null)
}

output "dead_letter_subscription" {
  description = "Pull subscription of the dead-letter topic: the batches the writer refused on every attempt."
  value       = try(google_pubsub_subscription.dead_letter["default"].name, null)
}

output "streams" {
  description = "Each stream's resources: capture worker pool, topic, push subscription and path, dead-letter subscription, slot and database (pg2bq --stream <name> selects one)."
  value = {
    for name, s in local.streams : name => {
      capture_worker_pool      = s.names.capture
      topic                    = google_pubsub_topic.changes[name].name
      push_subscription        = google_pubsub_subscription.push[name].name
      push_path                = s.push_path
      dead_letter_subscription = google_pubsub_subscription.dead_letter[name].name
      slot                     = s.slot
      database                 = s.database
      dataset_prefix           = s.dataset_prefix
    }
  }
}

output "sql_instance" {
  description = "Name of the Cloud SQL instance."
  value       = google_sql_database_instance.pg.name
}

output "sql_connection_name" {
  description = "Connection name of the instance, for the Cloud SQL Auth Proxy (project:region:instance)."
  value       = google_sql_database_instance.pg.connection_name
}

output "sql_private_ip" {
  description = "Private IP of the instance (private mode), else null."
  value       = local.private_ip ? google_sql_database_instance.pg.private_ip_address : null
}

output "pg_database" {
  description = "The replicated database."
  value       = google_sql_database.app.name
}

output "pg_replication_user" {
  description = "The user capture connects as; the sql-setup job gives it REPLICATION and read access (README, Deploy to GCP)."
  value       = google_sql_user.replicator.name
}

output "pg_password_secret" {
  description = "Secret Manager secret holding the replication user's password (read it with: gcloud secrets versions access latest --secret <name>)."
  value       = google_secret_manager_secret.pg_password.secret_id
}

output "bigquery_datasets" {
  description = "The BigQuery datasets created for the replicated schemas."
  value       = [for d in google_bigquery_dataset.target : d.dataset_id]
}

output "service_accounts" {
  description = "Service account of each component."
  value = {
    capture = google_service_account.capture.email
    writer  = google_service_account.writer.email
    push    = google_service_account.push.email
    merge   = local.staged_merge ? google_service_account.merge[0].email : null
  }
}

output "sql_setup_job" {
  description = "Cloud Run job that runs the one-time SQL (gcloud run jobs execute <name> --region <region> --wait), or null."
  value       = one(google_cloud_run_v2_job.sql_setup[*].name)
}

output "merge_job" {
  description = "Cloud Scheduler job that runs the staged MERGE, or null when the strategy needs none."
  value       = local.staged_merge ? google_cloud_scheduler_job.merge[0].name : null
}

output "dashboard_url" {
  description = "The Cloud Monitoring dashboard."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", module.monitoring.dashboard_id), 3)}?project=${var.project_id}"
}

output "log_metrics" {
  description = "Names of the log-based metrics."
  value       = module.monitoring.log_metrics
}
