terraform {
  # 1.11: write-only arguments (password_wo, secret_data_wo) and ephemeral resources keep the
  # replication password out of the state.
  required_version = ">= 1.11"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.37: google_cloud_run_v2_worker_pool.
      version = ">= 6.37, < 8.0"
    }
    random = {
      source = "hashicorp/random"
      # 3.7: the ephemeral random_password.
      version = ">= 3.7"
    }
    time = {
      source = "hashicorp/time"
      # time_sleep with triggers: waits for IAM and for new log-based metrics.
      version = ">= 0.9"
    }
  }
}
