# The staged MERGE: Cloud Scheduler calls the writer's /merge with an OIDC token. Any writer
# instance serves it (it merges every change table of the writer's datasets). Only with the
# staged strategy; native CDC and append-only mode have nothing to merge.

resource "google_cloud_scheduler_job" "merge" {
  count = local.staged_merge ? 1 : 0

  name             = local.names.merge_job
  region           = var.region
  description      = "pg2bq: fold the change tables into the mirror tables (staged MERGE)."
  schedule         = var.merge_schedule
  time_zone        = var.merge_time_zone
  attempt_deadline = "600s"

  # A failed run is not retried: the next run merges everything anyway.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloud_run_v2_service.writer.uri}/merge"

    oidc_token {
      service_account_email = google_service_account.merge[0].email
      audience              = local.merge_audience
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.merge_invoker]
}
