#!/usr/bin/env python3
"""Offline check of the values in terraform/ that the google provider or the Google APIs refuse.

`terraform validate` checks values against the provider's own validation (enumerations, ranges,
duration formats), and the APIs refuse more at apply time (a database flag Cloud SQL does not
support rejects the instance and everything after it). Without the provider plugin, this script
checks the same rules for the arguments this deployment sets: each value is a literal or a
`var.NAME` reference resolved to the variable's default (other expressions are skipped).

The rules come from the provider's source (hashicorp/terraform-provider-google: the
ValidateEnum / StringInSlice / IntBetween / ValidateRegexp of each resource) and from Google's
documentation, cited in terraform/README.md ("Checks").

Usage: tf_values.py TERRAFORM_DIR   (needs python-hcl2). Exit 0 clean, 1 findings, 2 usage error.
"""

import re
import sys
from pathlib import Path

import hcl2

DURATION_S = re.compile(r"^[0-9]+(?:\.[0-9]{1,9})?s$")  # google.protobuf.Duration, "600s"
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")  # time_sleep
HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def enum(*values):
    return ("enum", set(values))


def int_range(low, high):
    return ("range", (low, high))


def duration(low_s=None, high_s=None):
    return ("duration", (low_s, high_s))


def regex(pattern, what):
    return ("regex", (re.compile(pattern), what))


ALIGNERS = enum(
    "ALIGN_NONE", "ALIGN_DELTA", "ALIGN_RATE", "ALIGN_INTERPOLATE", "ALIGN_NEXT_OLDER",
    "ALIGN_MIN", "ALIGN_MAX", "ALIGN_MEAN", "ALIGN_COUNT", "ALIGN_SUM", "ALIGN_STDDEV",
    "ALIGN_COUNT_TRUE", "ALIGN_COUNT_FALSE", "ALIGN_FRACTION_TRUE", "ALIGN_PERCENTILE_99",
    "ALIGN_PERCENTILE_95", "ALIGN_PERCENTILE_50", "ALIGN_PERCENTILE_05", "ALIGN_PERCENT_CHANGE",
)
REDUCERS = enum(
    "REDUCE_NONE", "REDUCE_MEAN", "REDUCE_MIN", "REDUCE_MAX", "REDUCE_SUM", "REDUCE_STDDEV",
    "REDUCE_COUNT", "REDUCE_COUNT_TRUE", "REDUCE_COUNT_FALSE", "REDUCE_FRACTION_TRUE",
    "REDUCE_PERCENTILE_99", "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_05",
)
COMPARISONS = enum(
    "COMPARISON_GT", "COMPARISON_GE", "COMPARISON_LT", "COMPARISON_LE", "COMPARISON_EQ",
    "COMPARISON_NE",
)
LAUNCH_STAGES = enum(
    "UNIMPLEMENTED", "PRELAUNCH", "EARLY_ACCESS", "ALPHA", "BETA", "GA", "DEPRECATED",
)
EGRESS = enum("ALL_TRAFFIC", "PRIVATE_RANGES_ONLY")
RUN_TIMEOUT = regex(r"^[0-9]+(?:\.[0-9]{1,9})?s$", 'a duration such as "600s"')

# resource type -> argument path (blocks joined by ".") -> rule
RULES = {
    "google_sql_database_instance": {
        "database_version": regex(r"^POSTGRES_[0-9]+$", "POSTGRES_<major>"),
        "settings.edition": enum("ENTERPRISE", "ENTERPRISE_PLUS"),
        "settings.availability_type": enum("REGIONAL", "ZONAL"),
        "settings.connector_enforcement": enum("NOT_REQUIRED", "REQUIRED"),
        "settings.ip_configuration.ssl_mode": enum(
            "ALLOW_UNENCRYPTED_AND_ENCRYPTED", "ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
        ),
        "settings.maintenance_window.day": int_range(1, 7),
        "settings.maintenance_window.hour": int_range(0, 23),
        "settings.maintenance_window.update_track": enum("canary", "stable", "week5"),
        "settings.backup_configuration.start_time": regex(HH_MM.pattern, "HH:MM"),
        "settings.backup_configuration.transaction_log_retention_days": int_range(1, 35),
        "settings.disk_size": int_range(10, 65536),
        "settings.disk_autoresize_limit": int_range(0, 65536),
    },
    "google_pubsub_topic": {
        "message_retention_duration": duration(600, 2678400),
    },
    "google_pubsub_subscription": {
        "ack_deadline_seconds": int_range(10, 600),
        "message_retention_duration": duration(600, 2678400),
        "retry_policy.minimum_backoff": duration(0, 600),
        "retry_policy.maximum_backoff": duration(0, 600),
        "dead_letter_policy.max_delivery_attempts": int_range(5, 100),
    },
    "google_cloud_run_v2_service": {
        "ingress": enum(
            "INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY",
            "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
        ),
        "launch_stage": LAUNCH_STAGES,
        "template.timeout": RUN_TIMEOUT,
        "template.max_instance_request_concurrency": int_range(1, 1000),
        "template.vpc_access.egress": EGRESS,
    },
    "google_cloud_run_v2_worker_pool": {
        "launch_stage": LAUNCH_STAGES,
        "scaling.scaling_mode": enum("AUTOMATIC", "MANUAL"),
        "instance_splits.type": enum(
            "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST", "INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION"
        ),
        "template.vpc_access.egress": EGRESS,
    },
    "google_cloud_run_v2_job": {
        "launch_stage": LAUNCH_STAGES,
        "template.template.timeout": RUN_TIMEOUT,
        "template.template.vpc_access.egress": EGRESS,
    },
    "google_monitoring_alert_policy": {
        "combiner": enum("AND", "OR", "AND_WITH_MATCHING_RESOURCE"),
        "severity": enum("CRITICAL", "ERROR", "WARNING"),
        "conditions.condition_threshold.comparison": COMPARISONS,
        "conditions.condition_threshold.duration": duration(0, None),
        "conditions.condition_threshold.aggregations.alignment_period": duration(60, None),
        "conditions.condition_threshold.aggregations.per_series_aligner": ALIGNERS,
        "conditions.condition_threshold.aggregations.cross_series_reducer": REDUCERS,
        "conditions.condition_absent.duration": duration(0, None),
        "conditions.condition_absent.aggregations.alignment_period": duration(60, None),
        "conditions.condition_absent.aggregations.per_series_aligner": ALIGNERS,
        "conditions.condition_absent.aggregations.cross_series_reducer": REDUCERS,
        "documentation.mime_type": enum("text/markdown"),
    },
    "google_logging_metric": {
        "metric_descriptor.metric_kind": enum("DELTA", "GAUGE", "CUMULATIVE"),
        "metric_descriptor.value_type": enum(
            "BOOL", "INT64", "DOUBLE", "STRING", "DISTRIBUTION", "MONEY"
        ),
    },
    "google_cloud_scheduler_job": {
        "attempt_deadline": duration(15, 1800),
        "http_target.http_method": enum("POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"),
    },
    "google_compute_subnetwork": {
        "log_config.aggregation_interval": enum(
            "INTERVAL_5_SEC", "INTERVAL_30_SEC", "INTERVAL_1_MIN", "INTERVAL_5_MIN",
            "INTERVAL_10_MIN", "INTERVAL_15_MIN",
        ),
        "log_config.metadata": enum("EXCLUDE_ALL_METADATA", "INCLUDE_ALL_METADATA", "CUSTOM_METADATA"),
    },
    "google_compute_firewall": {
        "direction": enum("INGRESS", "EGRESS"),
        "log_config.metadata": enum("EXCLUDE_ALL_METADATA", "INCLUDE_ALL_METADATA"),
    },
    "google_compute_global_address": {
        "purpose": enum("VPC_PEERING", "PRIVATE_SERVICE_CONNECT"),
        "address_type": enum("INTERNAL", "EXTERNAL"),
    },
    "time_sleep": {
        "create_duration": regex(GO_DURATION.pattern, 'a Go duration such as "30s" or "10m"'),
    },
}

# Database flags: the ones this deployment may set, each with the first PostgreSQL major that
# Cloud SQL accepts it for (Cloud SQL's "Configure database flags" list, and the pages cited in
# terraform/README.md), and the ones Cloud SQL does not support at all. A flag in neither list is
# reported too: check it with `gcloud sql flags list --database-version=POSTGRES_N`, then add it.
SQL_FLAGS = {
    "cloudsql.logical_decoding": 10,
    "cloudsql.enable_pgaudit": 9,
    "cloudsql.iam_authentication": 9,
    "log_checkpoints": 9,
    "log_connections": 9,
    "log_disconnections": 9,
    "log_lock_waits": 9,
    "log_hostname": 9,
    "log_min_messages": 9,
    "log_min_error_statement": 9,
    "log_statement": 9,
    "log_temp_files": 9,
    "log_min_duration_statement": 9,
    "max_replication_slots": 9,
    "max_wal_senders": 9,
    "wal_sender_timeout": 9,
    "max_wal_size": 9,
    "logical_decoding_work_mem": 13,
}
SQL_FLAGS_UNSUPPORTED = {
    "max_slot_wal_keep_size": "Cloud SQL does not support it (Datastream, \"Work with PostgreSQL "
    "database WAL log files\"): the instance would be refused",
}


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def load(tf_dir):
    files = sorted(p for p in Path(tf_dir).rglob("*.tf") if ".terraform" not in p.parts)
    docs = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            docs.append((path, hcl2.load(f)))
    return docs


def variable_defaults(docs):
    defaults = {}
    for _, doc in docs:
        for block in doc.get("variable", []):
            for name, body in block.items():
                if "default" in body:
                    defaults[unquote(name)] = body["default"]
    return defaults


VAR_REF = re.compile(r"^\$\{var\.([A-Za-z0-9_]+)\}$")


def resolve(value, defaults):
    """A literal or var.NAME's default; None for anything else (an expression)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        return None
    m = VAR_REF.match(value)
    if m:
        if m.group(1) not in defaults:
            return None
        return resolve(defaults[m.group(1)], defaults)
    value = unquote(value)
    if "${" in value or "%{" in value:
        return None
    if re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return value


def walk(body, prefix=""):
    """(path, value) of every argument, through nested blocks (lists of dicts)."""
    for key, value in body.items():
        if key.startswith("__"):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                if item.get("__is_block__") or key in ("dynamic",):
                    yield from walk(item, path + ".")
                else:
                    yield path, value
        else:
            yield path, value


def check_rule(rule, value):
    kind, arg = rule
    if kind == "enum":
        return None if value in arg else f"must be one of {', '.join(sorted(arg))}"
    if kind == "range":
        low, high = arg
        if not isinstance(value, (int, float)):
            return "must be a number"
        return None if low <= value <= high else f"must be between {low} and {high}"
    if kind == "duration":
        low, high = arg
        if not isinstance(value, str) or not DURATION_S.match(value):
            return 'must be a duration in seconds such as "600s"'
        seconds = float(value[:-1])
        if low is not None and seconds < low:
            return f"must be at least {low}s"
        if high is not None and seconds > high:
            return f"must be at most {high}s"
        return None
    if kind == "regex":
        pattern, what = arg
        return None if isinstance(value, str) and pattern.match(value) else f"must be {what}"
    raise ValueError(kind)


def database_major(body, defaults):
    version = resolve(body.get("database_version"), defaults)
    m = re.match(r"^POSTGRES_([0-9]+)", version or "")
    return int(m.group(1)) if m else None


def check_flags(where, body, defaults, findings):
    major = database_major(body, defaults)
    for settings in body.get("settings", []):
        names = []
        for flag in settings.get("database_flags", []):
            names.append(resolve(flag.get("name"), defaults))
        for dyn in settings.get("dynamic", []):
            for label, content in dyn.items():
                if unquote(label) != "database_flags":
                    continue
                for_each = content.get("for_each")
                m = VAR_REF.match(for_each) if isinstance(for_each, str) else None
                if m and isinstance(defaults.get(m.group(1)), dict):
                    names.extend(defaults[m.group(1)].keys())
        for name in names:
            if name is None:
                continue
            if name in SQL_FLAGS_UNSUPPORTED:
                findings.append(f"{where}: database flag {name}: {SQL_FLAGS_UNSUPPORTED[name]}")
            elif name not in SQL_FLAGS:
                findings.append(
                    f"{where}: database flag {name} is not a flag this check knows Cloud SQL "
                    "supports; check gcloud sql flags list and add it to SQL_FLAGS"
                )
            elif major is not None and major < SQL_FLAGS[name]:
                findings.append(
                    f"{where}: database flag {name} needs POSTGRES_{SQL_FLAGS[name]} or later "
                    f"(database_version is POSTGRES_{major})"
                )


def main(argv):
    if len(argv) != 2 or not Path(argv[1]).is_dir():
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    docs = load(argv[1])
    defaults = variable_defaults(docs)
    findings, checked = [], 0
    for path, doc in docs:
        for block in doc.get("resource", []):
            for rtype, instances in block.items():
                rtype = unquote(rtype)
                rules = RULES.get(rtype)
                for rname, body in instances.items():
                    where = f"{path.relative_to(argv[1])}: {rtype}.{unquote(rname)}"
                    if rtype == "google_sql_database_instance":
                        check_flags(where, body, defaults, findings)
                    if not rules:
                        continue
                    for arg_path, raw in walk(body):
                        rule = rules.get(arg_path)
                        if rule is None:
                            continue
                        value = resolve(raw, defaults)
                        if value is None:
                            continue
                        checked += 1
                        problem = check_rule(rule, value)
                        if problem:
                            findings.append(f"{where}: {arg_path} = {value!r} {problem}")
    for finding in findings:
        print(f"  {finding}")
    print(
        f"tf-values: {len(docs)} files, {checked} values checked against the provider's and "
        f"the APIs' rules, {len(findings)} findings"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
