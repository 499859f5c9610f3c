# Private mode: a VPC whose subnet carries capture's Direct VPC egress, peered with Cloud SQL
# through private services access. Nothing here exists in public mode.

resource "google_compute_network" "this" {
  count = local.private_ip ? 1 : 0

  name                    = local.names.network
  auto_create_subnetworks = false
  description             = "pg2bq: capture's Direct VPC egress to Cloud SQL's private IP."
}

resource "google_compute_subnetwork" "capture" {
  count = local.private_ip ? 1 : 0

  name                     = "${local.names.network}-capture"
  network                  = google_compute_network.this[0].id
  region                   = var.region
  ip_cidr_range            = var.network_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.1
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "sql_peering" {
  count = local.private_ip ? 1 : 0

  name          = "${local.names.network}-sql-peering"
  network       = google_compute_network.this[0].id
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.sql_peering_prefix_length
}

resource "google_service_networking_connection" "sql" {
  count = local.private_ip ? 1 : 0

  network                 = google_compute_network.this[0].id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sql_peering[0].name]
}

# Nothing enters this network: an explicit, logged deny of all ingress (the implied rule denies it
# too, silently). Capture's egress to Cloud SQL is not affected.
resource "google_compute_firewall" "deny_ingress" {
  count = local.private_ip ? 1 : 0

  name        = "${local.names.network}-deny-ingress"
  network     = google_compute_network.this[0].id
  description = "pg2bq: no ingress into the capture network."
  direction   = "INGRESS"
  priority    = 65534

  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Optional: an operator VM (network tag pg2bq-operator) reachable by `gcloud compute ssh
# --tunnel-through-iap`, to reach the private IP with cloud-sql-proxy --private-ip.
resource "google_compute_firewall" "operator_iap_ssh" {
  count = local.private_ip && var.operator_ssh_via_iap ? 1 : 0

  name        = "${local.names.network}-operator-iap-ssh"
  network     = google_compute_network.this[0].id
  description = "pg2bq: SSH from Identity-Aware Proxy to operator VMs."
  direction   = "INGRESS"
  priority    = 1000

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
  source_ranges = ["35.235.240.0/20"]
  target_tags   = ["pg2bq-operator"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
