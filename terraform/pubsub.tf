# Pub/Sub: capture publishes change batches to the topic; the push subscription delivers them to
# the writer with an OIDC token and retries every failure until the message's retention passes;
# the writer itself forwards a message it can never write to the dead-letter topic.
#
# No ordering keys and no message ordering: correctness comes from sequence numbers (the newest
# seq per key wins), so unordered, duplicated delivery is fine, and ordering would only serialise
# pushes per key and make a redelivery resend every later message of its key.

# One of each per stream (streams.tf).

resource "google_pubsub_topic" "changes" {
  for_each = local.streams

  name         = each.value.names.topic
  kms_key_name = var.pubsub_kms_key_name
  labels       = { component = "transport" }

  # The topic keeps what capture published, acknowledged or not, for this long: a new or replaced
  # push subscription can seek back into it (gcloud pubsub subscriptions seek --time), so nothing
  # published while no subscription existed is lost.
  message_retention_duration = var.pubsub_topic_retention
}

resource "google_pubsub_topic" "dead_letter" {
  for_each = local.streams

  name         = each.value.names.dead_letter
  kms_key_name = var.pubsub_kms_key_name
  labels       = { component = "transport" }
}

resource "google_pubsub_subscription" "push" {
  for_each = local.streams

  name   = each.value.names.push
  topic  = google_pubsub_topic.changes[each.key].id
  labels = { component = "transport" }

  # For push, the ack deadline is the request timeout of each push (Pub/Sub's Subscription
  # reference): at least the writer's request timeout, or a slow push is redelivered while it
  # still runs.
  ack_deadline_seconds       = var.pubsub_ack_deadline_seconds
  message_retention_duration = var.pubsub_message_retention
  enable_message_ordering    = false

  push_config {
    # The run.app URL: Pub/Sub in the same project reaches an internal-ingress service there.
    # /push for one stream; /push/<name> for each of several (the writer's settings per stream).
    push_endpoint = "${google_cloud_run_v2_service.writer.uri}${each.value.push_path}"

    oidc_token {
      service_account_email = google_service_account.push.email
      # One of the writer's custom audiences; the writer verifies it (PG2BQ_PUSH_AUDIENCE).
      audience = local.push_audience
    }
  }

  retry_policy {
    minimum_backoff = var.pubsub_min_backoff
    maximum_backoff = var.pubsub_max_backoff
  }

  # No dead_letter_policy, on purpose. Pub/Sub counts a 5xx, a timeout or an unreachable writer
  # like a refusal, and would dead-letter after at most 100 attempts (about 17 hours at the
  # longest backoff): a BigQuery incident, a broken writer deploy or an expired permission
  # outlasting that would move every batch of the window aside, with capture's positions long
  # confirmed. Only the writer can tell a message it can never write from an outage, so it
  # forwards those itself (PG2BQ_DEAD_LETTER_TOPIC), and every other failure is retried until
  # pubsub_message_retention passes.

  # Never expire for inactivity: an idle source must not lose its subscription.
  expiration_policy {
    ttl = ""
  }

  # A change that replaces the subscription creates the new one before deleting the old, so one
  # of them always receives what capture publishes. Under the same name the creation fails (the
  # name is taken) and nothing is deleted; give pubsub_push_subscription_name a new value to
  # replace it (terraform/README.md, "A changed push subscription").
  lifecycle {
    create_before_destroy = true
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_service_account_iam_member.push_token_creator,
  ]
}

# The dead-letter topic needs a subscription of its own, or Pub/Sub drops what it receives. It is
# the only copy of what it holds (capture confirmed those positions long ago), so it keeps them as
# long as Pub/Sub allows, acknowledged ones included: `pg2bq deadletter list` shows them and
# `pg2bq deadletter replay` publishes them to the changes topic again, and after a replay or a
# `list --acknowledge` `gcloud pubsub subscriptions seek <name> --time=<before>` brings them back.
# Its name is `pg2bq deadletter`'s default (<topic>-dead-letter-pull).
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.streams

  name   = each.value.names.dead_letter_sub
  topic  = google_pubsub_topic.dead_letter[each.key].id
  labels = { component = "transport" }

  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_dead_letter_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}
