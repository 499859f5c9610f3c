//! The configuration file: one TOML file with the source profile, the target profile and the
//! stream, read by `capture`, `writer` and `pg2bq` alike.
//!
//! Every key of the file stands for one environment variable (see [`SETTINGS`]). Precedence,
//! highest first: a command-line flag, the environment variable, the file, the built-in default.
//! The file only supplies defaults to the flags that read that variable, so a binary simply
//! ignores the keys it has no use for.
//!
//! Secrets are never read from the file: a `password` key is refused with the fix (the
//! `PG2BQ_PG_PASSWORD` environment variable, or a Secret Manager reference in `password_secret`).
//!
//! The file is the one named by `--config` or `PG2BQ_CONFIG`, else `pg2bq.toml` in the working
//! directory if there is one.
//!
//! One file can describe several streams of one deployment (see [`streams`]): `[streams.<name>.
//! <section>]` tables hold each stream's own values over the shared ones. Capture and `pg2bq`
//! work on one stream, chosen with `--stream` or `PG2BQ_STREAM`; the writer serves them all.

use crate::error::{CoreError, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub mod streams;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "PG2BQ_CONFIG";

/// The environment variable holding the configuration file's text itself, read when no file is
/// named (`--config`, `PG2BQ_CONFIG`): for deployments that pass the file as a value, as
/// Terraform does for a writer serving several streams.
pub const CONFIG_TEXT_ENV: &str = "PG2BQ_CONFIG_TOML";

/// The environment variable naming the stream a process works on, among the file's streams.
pub const STREAM_ENV: &str = "PG2BQ_STREAM";

/// The file read when neither `--config` nor `PG2BQ_CONFIG` names one.
pub const DEFAULT_FILE: &str = "pg2bq.toml";

/// A setting of the file: its section, its key and the environment variable it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// `[section]` of the file.
    pub section: &'static str,
    /// Key within the section.
    pub key: &'static str,
    /// The environment variable the key stands for.
    pub env: &'static str,
}

const fn setting(section: &'static str, key: &'static str, env: &'static str) -> Setting {
    Setting { section, key, env }
}

/// Every key the file may hold.
pub const SETTINGS: &[Setting] = &[
    setting("source", "host", "PG2BQ_PG_HOST"),
    setting("source", "port", "PG2BQ_PG_PORT"),
    setting("source", "user", "PG2BQ_PG_USER"),
    setting("source", "database", "PG2BQ_PG_DATABASE"),
    setting("source", "password_secret", "PG2BQ_PG_PASSWORD_SECRET"),
    setting("source", "sslmode", "PG2BQ_PG_SSLMODE"),
    setting("source", "sslrootcert", "PG2BQ_PG_SSLROOTCERT"),
    setting("source", "sslcert", "PG2BQ_PG_SSLCERT"),
    setting("source", "sslkey", "PG2BQ_PG_SSLKEY"),
    setting("target", "project", "PG2BQ_PROJECT"),
    setting("target", "location", "PG2BQ_BQ_LOCATION"),
    setting("target", "dataset", "PG2BQ_BQ_DATASET"),
    setting("target", "dataset_prefix", "PG2BQ_BQ_DATASET_PREFIX"),
    setting("target", "rename", "PG2BQ_BQ_RENAME"),
    setting("target", "kms_key_name", "PG2BQ_BQ_KMS_KEY_NAME"),
    setting("target", "dataset_labels", "PG2BQ_BQ_DATASET_LABELS"),
    setting("target", "partitioning", "PG2BQ_BQ_PARTITIONING"),
    setting("target", "clustering", "PG2BQ_BQ_CLUSTERING"),
    setting("target", "rest_endpoint", "PG2BQ_BQ_REST_ENDPOINT"),
    setting("target", "grpc_endpoint", "PG2BQ_BQ_GRPC_ENDPOINT"),
    setting("stream", "slot", "PG2BQ_SLOT"),
    setting("stream", "publication", "PG2BQ_PUBLICATION"),
    setting("stream", "state_schema", "PG2BQ_STATE_SCHEMA"),
    setting("stream", "include", "PG2BQ_INCLUDE"),
    setting("stream", "exclude", "PG2BQ_EXCLUDE"),
    setting("stream", "columns_exclude", "PG2BQ_COLUMNS_EXCLUDE"),
    setting("stream", "columns_include", "PG2BQ_COLUMNS_INCLUDE"),
    setting("stream", "row_filters", "PG2BQ_ROW_FILTERS"),
    setting("stream", "backfill", "PG2BQ_BACKFILL"),
    setting("stream", "backfill_exclude", "PG2BQ_BACKFILL_EXCLUDE"),
    setting("stream", "partitions", "PG2BQ_PARTITIONS"),
    setting("stream", "write_mode", "PG2BQ_WRITE_MODE"),
    setting("stream", "soft_deletes", "PG2BQ_SOFT_DELETES"),
    setting("stream", "merge_strategy", "PG2BQ_MERGE_STRATEGY"),
    setting("stream", "max_staleness_secs", "PG2BQ_MAX_STALENESS_SECS"),
    setting("stream", "merge_interval_ms", "PG2BQ_MERGE_INTERVAL_MS"),
    setting(
        "stream",
        "change_retention_secs",
        "PG2BQ_CHANGE_RETENTION_SECS",
    ),
    setting("stream", "protect", "PG2BQ_PROTECT"),
    setting("stream", "protect_key_secret", "PG2BQ_PROTECT_KEY_SECRET"),
    setting("stream", "topic", "PG2BQ_TOPIC"),
    setting(
        "stream",
        "deadletter_subscription",
        "PG2BQ_DEADLETTER_SUBSCRIPTION",
    ),
    setting("capture", "batch_max_rows", "PG2BQ_BATCH_MAX_ROWS"),
    setting("capture", "batch_max_bytes", "PG2BQ_BATCH_MAX_BYTES"),
    setting("capture", "batch_max_delay_ms", "PG2BQ_BATCH_MAX_DELAY_MS"),
    setting("capture", "max_unacked_bytes", "PG2BQ_MAX_UNACKED_BYTES"),
    setting("capture", "compression", "PG2BQ_COMPRESSION"),
    setting("capture", "heartbeat_secs", "PG2BQ_HEARTBEAT_SECS"),
    setting(
        "capture",
        "publication_refresh_secs",
        "PG2BQ_PUBLICATION_REFRESH_SECS",
    ),
    setting("capture", "reconnect_max_secs", "PG2BQ_RECONNECT_MAX_SECS"),
    setting("capture", "publish_retry_secs", "PG2BQ_PUBLISH_RETRY_SECS"),
    setting("capture", "metrics_log_secs", "PG2BQ_METRICS_LOG_SECS"),
    setting(
        "capture",
        "backfill_concurrency",
        "PG2BQ_BACKFILL_CONCURRENCY",
    ),
    setting(
        "capture",
        "backfill_range_blocks",
        "PG2BQ_BACKFILL_RANGE_BLOCKS",
    ),
    setting("capture", "health_port", "PG2BQ_HEALTH_PORT"),
    setting("capture", "pubsub_emulator_host", "PUBSUB_EMULATOR_HOST"),
    setting("writer", "port", "PORT"),
    setting("writer", "listen_address", "PG2BQ_LISTEN_ADDRESS"),
    setting("writer", "push_auth", "PG2BQ_PUSH_AUTH"),
    setting("writer", "push_audience", "PG2BQ_PUSH_AUDIENCE"),
    setting(
        "writer",
        "push_service_account",
        "PG2BQ_PUSH_SERVICE_ACCOUNT",
    ),
    setting("writer", "merge_audience", "PG2BQ_MERGE_AUDIENCE"),
    setting(
        "writer",
        "merge_service_account",
        "PG2BQ_MERGE_SERVICE_ACCOUNT",
    ),
    setting("writer", "oidc_jwks_url", "PG2BQ_OIDC_JWKS_URL"),
    setting("writer", "bq_timeout_secs", "PG2BQ_BQ_TIMEOUT_SECS"),
    setting("writer", "dead_letter_topic", "PG2BQ_DEAD_LETTER_TOPIC"),
];

/// Keys refused anywhere in the file, because their values would be secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "pg_password",
    "secret",
    "private_key",
    "protect_key",
    "key",
];

/// A loaded configuration file: environment variable name to value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    values: BTreeMap<&'static str, String>,
    /// Each stream's own values, by stream name.
    streams: BTreeMap<String, BTreeMap<&'static str, String>>,
    /// Variables whose value is a stream's own: they win over the environment.
    own: std::collections::BTreeSet<&'static str>,
}

impl ConfigFile {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CoreError::Config(format!(
                "cannot read the configuration file {} ({e}); `pg2bq init` writes an example",
                path.display()
            ))
        })?;
        let mut file = Self::parse(&text).map_err(|e| match e {
            CoreError::Config(message) => {
                CoreError::Config(format!("{}: {message}", path.display()))
            }
            other => other,
        })?;
        file.path = path.to_owned();
        Ok(file)
    }

    /// Parses the text of a file.
    pub fn parse(text: &str) -> Result<Self> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| CoreError::Config(format!("not valid TOML: {e}")))?;
        let mut values = BTreeMap::new();
        let mut streams = BTreeMap::new();
        for (section, body) in &table {
            let toml::Value::Table(body) = body else {
                return Err(unknown_section(section));
            };
            if section == streams::SECTION {
                streams = streams::parse(body)?;
                continue;
            }
            section_values(section, body, &mut values)?;
        }
        Ok(ConfigFile {
            path: PathBuf::new(),
            values,
            streams,
            own: Default::default(),
        })
    }

    /// The value the file gives the environment variable `env`.
    pub fn get(&self, env: &str) -> Option<&str> {
        self.values.get(env).map(String::as_str)
    }

    /// Makes the file's values the defaults of every argument (in `command` and its
    /// subcommands) that reads one of its variables, unless that variable is set.
    pub fn apply(&self, command: clap::Command) -> clap::Command {
        self.apply_with(command, &|name| std::env::var_os(name).is_some())
    }

    fn apply_with(
        &self,
        command: clap::Command,
        env_is_set: &dyn Fn(&str) -> bool,
    ) -> clap::Command {
        let mut command = command;
        let ids: Vec<(clap::Id, &'static str)> = command
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_str()?;
                let (name, _) = self.values.get_key_value(env)?;
                (self.own.contains(name) || !env_is_set(name))
                    .then(|| (arg.get_id().clone(), *name))
            })
            .collect();
        for (id, env) in ids {
            let value = self.values[env].clone();
            let own = self.own.contains(env);
            // A default satisfies a required argument. A stream's own value is not overridden
            // by the environment (which holds the values shared by the deployment's streams).
            command = command.mut_arg(id, |arg| {
                let arg = if own { arg.env(None) } else { arg };
                arg.default_value(value).required(false)
            });
        }
        let subcommands: Vec<String> = command
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for name in subcommands {
            command = command.mut_subcommand(name, |sub| self.apply_with(sub, env_is_set));
        }
        command
    }
}

/// Reads the keys of one `[section]` into `values` (variable name to value).
fn section_values(
    section: &str,
    body: &toml::Table,
    values: &mut BTreeMap<&'static str, String>,
) -> Result<()> {
    if !SETTINGS.iter().any(|s| s.section == section) {
        return Err(unknown_section(section));
    }
    for (key, value) in body {
        let setting = find_setting(section, key)?;
        values.insert(setting.env, value_text(setting, value)?);
    }
    Ok(())
}

fn unknown_section(section: &str) -> CoreError {
    CoreError::Config(format!(
        "unknown section [{section}]; the sections are [source], [target], [stream], [capture], \
         [writer] and [streams.<name>.<section>]"
    ))
}

fn find_setting(section: &str, key: &str) -> Result<&'static Setting> {
    if matches!(key, "protect_key" | "key") {
        return Err(CoreError::Config(format!(
            "[{section}] {key}: secrets are never read from the configuration file; set \
             PG2BQ_PROTECT_KEY in the environment, or name a Secret Manager secret with \
             protect_key_secret = \"projects/<project>/secrets/<name>/versions/latest\""
        )));
    }
    if SECRET_KEYS.contains(&key) {
        return Err(CoreError::Config(format!(
            "[{section}] {key}: secrets are never read from the configuration file; set \
             PG2BQ_PG_PASSWORD in the environment, or name a Secret Manager secret with \
             password_secret = \"projects/<project>/secrets/<name>/versions/latest\""
        )));
    }
    SETTINGS
        .iter()
        .find(|s| s.section == section && s.key == key)
        .ok_or_else(|| {
            let known: Vec<&str> = SETTINGS
                .iter()
                .filter(|s| s.section == section)
                .map(|s| s.key)
                .collect();
            CoreError::Config(format!(
                "unknown key '{key}' in [{section}]; the keys of [{section}] are: {}",
                known.join(", ")
            ))
        })
}

fn value_text(setting: &Setting, value: &toml::Value) -> Result<String> {
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    let text = match value {
        toml::Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<String>>>()
            .map(|items| items.join(",")),
        other => scalar(other),
    };
    text.ok_or_else(|| {
        CoreError::Config(format!(
            "[{}] {}: expected a string, a number, a boolean or a list of them",
            setting.section, setting.key
        ))
    })
}

/// The configuration file named by `--config <path>` (or `--config=<path>`) in `args`, else by
/// `PG2BQ_CONFIG`, else `pg2bq.toml` if it exists in the working directory.
pub fn locate(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    Path::new(DEFAULT_FILE)
        .is_file()
        .then(|| PathBuf::from(DEFAULT_FILE))
}

/// The configuration the process reads, if any: the file named by `--config` or
/// `PG2BQ_CONFIG`, else the text of `PG2BQ_CONFIG_TOML`, else `./pg2bq.toml` if it exists.
fn load_located(args: &[OsString]) -> Option<Result<ConfigFile>> {
    let named = args
        .iter()
        .any(|a| a == "--config" || a.to_string_lossy().starts_with("--config="))
        || std::env::var_os(CONFIG_ENV).is_some_and(|p| !p.is_empty());
    if !named
        && let Some(text) = std::env::var(CONFIG_TEXT_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
    {
        return Some(
            ConfigFile::parse(&text)
                .map(|mut file| {
                    file.path = PathBuf::from(CONFIG_TEXT_ENV);
                    file
                })
                .map_err(|e| match e {
                    CoreError::Config(message) => {
                        CoreError::Config(format!("{CONFIG_TEXT_ENV}: {message}"))
                    }
                    other => other,
                }),
        );
    }
    locate(args).map(|path| ConfigFile::load(&path))
}

/// The stream named by `--stream <name>` (or `--stream=<name>`) in `args`, else by
/// `PG2BQ_STREAM`.
pub fn locate_stream(args: &[OsString]) -> Option<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--stream" {
            return args.next().map(|s| s.to_string_lossy().into_owned());
        }
        if let Some(name) = arg.strip_prefix("--stream=") {
            return Some(name.to_owned());
        }
    }
    std::env::var(STREAM_ENV).ok().filter(|s| !s.is_empty())
}

/// The command of `T` with the flags every binary has: `--config` and `--stream`.
fn command_of<T: clap::Parser>() -> clap::Command {
    T::command()
        .arg(
            clap::Arg::new("config")
                .long("config")
                .env(CONFIG_ENV)
                .global(true)
                .value_name("FILE")
                .help("Configuration file (default: ./pg2bq.toml if present); `pg2bq init` writes one"),
        )
        .arg(
            clap::Arg::new("stream")
                .long("stream")
                .env(STREAM_ENV)
                .global(true)
                .value_name("NAME")
                .help("The stream of the configuration file to work on (its [streams.<name>] tables)"),
        )
}

fn exit_with(error: &CoreError) -> ! {
    eprintln!("error: {error}");
    std::process::exit(2);
}

fn parse_from<T: clap::Parser>(command: clap::Command, args: &[OsString]) -> T {
    let matches = command.get_matches_from(args.iter().cloned());
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Parses the command line of a binary with the configuration file's values as defaults, those
/// of the stream chosen by `--stream` or `PG2BQ_STREAM` over the shared ones. `--config` and
/// `--stream` flags are added to the command. A file that cannot be read or is wrong, or a
/// stream missing from it, ends the process with exit code 2 and a message naming the problem.
pub fn parse_with_config<T: clap::Parser>() -> T {
    let args: Vec<OsString> = std::env::args_os().collect();
    let stream = locate_stream(&args);
    let command = command_of::<T>();
    let command = match load_located(&args) {
        None if stream.is_some() => exit_with(&CoreError::Config(
            "a stream is chosen (--stream or PG2BQ_STREAM), but there is no configuration file: \
             name the file that describes the streams with --config or PG2BQ_CONFIG"
                .into(),
        )),
        None => command,
        Some(file) => match file.and_then(|f| f.for_stream(stream.as_deref())) {
            Ok(file) => file.apply(command),
            Err(e) => exit_with(&e),
        },
    };
    parse_from(command, &args)
}

/// The writer's parse: its settings for pushes of no named stream (the shared values), and each
/// stream's settings, by name, for the streams the configuration file describes.
pub fn parse_streams_with_config<T: clap::Parser>() -> (T, Vec<(String, T)>) {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(file) = load_located(&args) else {
        return (parse_from(command_of::<T>(), &args), Vec::new());
    };
    let file = file.unwrap_or_else(|e| exit_with(&e));
    let shared = parse_from(file.apply(command_of::<T>()), &args);
    let streams = file
        .stream_names()
        .map(|name| {
            let own = file
                .for_stream(Some(name))
                .unwrap_or_else(|e| exit_with(&e));
            (
                name.to_owned(),
                parse_from(own.apply(command_of::<T>()), &args),
            )
        })
        .collect();
    (shared, streams)
}

#[cfg(test)]
mod tests;
