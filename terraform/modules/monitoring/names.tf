# The streams' resources as the alerts name them and as filters match them (one stream or many).

locals {
  capture_pools_text      = join(", ", var.capture_worker_pools)
  push_subscriptions_text = join(", ", var.push_subscriptions)
  dead_letters_text       = join(", ", var.dead_letter_subscriptions)

  # Monitoring filters: the subscription_id label is one of the names.
  push_subscription_match = "monitoring.regex.full_match(\"${join("|", var.push_subscriptions)}\")"
  dead_letter_match       = "monitoring.regex.full_match(\"${join("|", var.dead_letter_subscriptions)}\")"
  # Logging filter: the worker pool is one of capture's.
  capture_pool_match = "=~\"^(${join("|", var.capture_worker_pools)})$\""
}
