provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource that takes labels gets these; resources add their own `component`.
  default_labels = local.labels
}
