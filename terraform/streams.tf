# The streams of the deployment, each with its settings and resource names (see var.streams).
# Without var.streams there is one stream, "default", with the names of a one-stream deployment
# and pushes to /push; with it, each stream's pushes go to /push/<name> and the writer reads the
# streams' own settings from PG2BQ_CONFIG_TOML.

locals {
  multi_stream = length(var.streams) > 0

  streams = local.multi_stream ? {
    for name, s in var.streams : name => {
      instance       = coalesce(s.instance, google_sql_database_instance.pg.connection_name)
      database       = coalesce(s.database, var.pg_database)
      slot           = coalesce(s.slot, "${var.capture_slot}_${replace(name, "-", "_")}")
      include        = coalesce(s.include, var.capture_include)
      exclude        = s.exclude == null ? var.capture_exclude : s.exclude
      backfill       = coalesce(s.backfill, var.capture_backfill)
      partitions     = s.partitions
      dataset_prefix = s.dataset_prefix == null ? "${var.bq_dataset_prefix}${replace(name, "-", "_")}_" : s.dataset_prefix
      soft_deletes   = s.soft_deletes
      capture_env    = s.capture_env
      push_path      = "/push/${name}"
      names = {
        capture         = "${var.name_prefix}-${name}-capture"
        topic           = "${var.name_prefix}-${name}-changes"
        push            = "${var.name_prefix}-${name}-changes-push"
        dead_letter     = "${var.name_prefix}-${name}-changes-dead-letter"
        dead_letter_sub = "${var.name_prefix}-${name}-changes-dead-letter-pull"
      }
    }
    } : {
    default = {
      instance       = google_sql_database_instance.pg.connection_name
      database       = var.pg_database
      slot           = var.capture_slot
      include        = var.capture_include
      exclude        = var.capture_exclude
      backfill       = var.capture_backfill
      partitions     = "root"
      dataset_prefix = var.bq_dataset_prefix
      soft_deletes   = false
      capture_env    = {}
      push_path      = "/push"
      names = {
        capture         = local.names.capture
        topic           = local.names.topic
        push            = local.push_subscription
        dead_letter     = local.names.dead_letter
        dead_letter_sub = local.names.dead_letter_sub
      }
    }
  }

  # The writer's view of the streams: each stream's own target and dead-letter topic, as the
  # configuration file's [streams.<name>.<section>] tables (read from PG2BQ_CONFIG_TOML).
  writer_streams_toml = join("\n", [
    for name, s in local.streams : <<-EOT
      [streams.${name}.stream]
      soft_deletes = ${s.soft_deletes}
      [streams.${name}.target]
      dataset_prefix = "${s.dataset_prefix}"
      [streams.${name}.writer]
      dead_letter_topic = "${google_pubsub_topic.dead_letter[name].id}"
    EOT
  ])
}

# A one-stream deployment's resources are the "default" stream's.
moved {
  from = google_pubsub_topic.changes
  to   = google_pubsub_topic.changes["default"]
}

moved {
  from = google_pubsub_topic.dead_letter
  to   = google_pubsub_topic.dead_letter["default"]
}

moved {
  from = google_pubsub_subscription.push
  to   = google_pubsub_subscription.push["default"]
}

moved {
  from = google_pubsub_subscription.dead_letter
  to   = google_pubsub_subscription.dead_letter["default"]
}

moved {
  from = google_cloud_run_v2_worker_pool.capture[0]
  to   = google_cloud_run_v2_worker_pool.capture["default"]
}

moved {
  from = google_pubsub_topic_iam_member.capture_publisher
  to   = google_pubsub_topic_iam_member.capture_publisher["default"]
}

moved {
  from = google_pubsub_topic_iam_member.writer_dead_letter_publisher
  to   = google_pubsub_topic_iam_member.writer_dead_letter_publisher["default"]
}
