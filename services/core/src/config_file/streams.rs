//! Several streams in one configuration file: `[streams.<name>.<section>]` tables, each holding
//! keys of `[source]`, `[target]`, `[stream]`, `[capture]` or `[writer]` that are that stream's
//! own (its database, slot, publication, topic, datasets, ...). The top-level sections hold what
//! the streams share.
//!
//! A stream's own value wins over the shared one in the file and over the environment (where a
//! deployment puts its shared settings); only a command-line flag wins over it.

use super::{ConfigFile, section_values};
use crate::error::{CoreError, Result};
use std::collections::BTreeMap;

/// The top-level key of the streams' tables.
pub const SECTION: &str = "streams";

/// Each stream's own values: stream name to variable name to value.
pub(super) type Streams = BTreeMap<String, BTreeMap<&'static str, String>>;

/// Whether `name` can name a stream: 1 to 63 lowercase letters, digits, `-` and `_`, starting
/// with a letter (it appears in push paths and resource names).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parses the body of `[streams]`.
pub(super) fn parse(body: &toml::Table) -> Result<Streams> {
    let mut streams = Streams::new();
    for (name, stream) in body {
        if !valid_name(name) {
            return Err(CoreError::Config(format!(
                "[streams.{name}]: a stream name has 1 to 63 lowercase letters, digits, '-' and \
                 '_', and starts with a letter"
            )));
        }
        let toml::Value::Table(stream) = stream else {
            return Err(CoreError::Config(format!(
                "[streams.{name}] holds sections, e.g. [streams.{name}.source] database = \"orders\""
            )));
        };
        let mut values = BTreeMap::new();
        for (section, keys) in stream {
            let toml::Value::Table(keys) = keys else {
                return Err(CoreError::Config(format!(
                    "[streams.{name}] {section}: expected a section such as [streams.{name}.stream]"
                )));
            };
            section_values(section, keys, &mut values).map_err(|e| match e {
                CoreError::Config(message) => {
                    CoreError::Config(format!("[streams.{name}]: {message}"))
                }
                other => other,
            })?;
        }
        streams.insert(name.clone(), values);
    }
    Ok(streams)
}

impl ConfigFile {
    /// The names of the file's streams, in order.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// The settings of the stream `name`: the shared values with the stream's own over them.
    /// Without a name, the file itself, unless it describes streams: then one must be chosen.
    pub fn for_stream(&self, name: Option<&str>) -> Result<ConfigFile> {
        let names = || self.stream_names().collect::<Vec<_>>().join(", ");
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            if self.streams.is_empty() {
                return Ok(self.clone());
            }
            return Err(CoreError::Config(format!(
                "{} describes the streams {}: choose one with --stream <name> or PG2BQ_STREAM",
                self.path.display(),
                names()
            )));
        };
        let Some(own) = self.streams.get(name) else {
            let known = if self.streams.is_empty() {
                "it describes no stream ([streams.<name>.<section>] tables)".to_owned()
            } else {
                format!("its streams are {}", names())
            };
            return Err(CoreError::Config(format!(
                "stream '{name}' is not in {}: {known}",
                self.path.display()
            )));
        };
        let mut file = self.clone();
        file.streams.clear();
        for (env, value) in own {
            file.values.insert(env, value.clone());
            file.own.insert(env);
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[source]
host = "db.internal"
database = "shared"
[stream]
include = "public.*"
[streams.orders.source]
database = "orders"
[streams.orders.stream]
slot = "orders"
topic = "orders-changes"
[streams.billing.stream]
slot = "billing"
soft_deletes = true
"#;

    #[test]
    fn each_stream_has_its_own_values_over_the_shared_ones() {
        let file = ConfigFile::parse(FILE).unwrap();
        assert_eq!(
            file.stream_names().collect::<Vec<_>>(),
            ["billing", "orders"]
        );
        let orders = file.for_stream(Some("orders")).unwrap();
        assert_eq!(orders.get("PG2BQ_PG_DATABASE"), Some("orders"));
        assert_eq!(orders.get("PG2BQ_PG_HOST"), Some("db.internal"));
        assert_eq!(orders.get("PG2BQ_SLOT"), Some("orders"));
        assert_eq!(orders.get("PG2BQ_SOFT_DELETES"), None);
        let billing = file.for_stream(Some("billing")).unwrap();
        assert_eq!(billing.get("PG2BQ_PG_DATABASE"), Some("shared"));
        assert_eq!(billing.get("PG2BQ_SOFT_DELETES"), Some("true"));
        assert_eq!(billing.get("PG2BQ_INCLUDE"), Some("public.*"));
    }

    #[test]
    fn a_stream_must_be_chosen_and_known() {
        let file = ConfigFile::parse(FILE).unwrap();
        let err = file.for_stream(None).unwrap_err().to_string();
        assert!(
            err.contains("billing, orders") && err.contains("--stream"),
            "{err}"
        );
        let err = file.for_stream(Some("nosuch")).unwrap_err().to_string();
        assert!(
            err.contains("'nosuch'") && err.contains("billing, orders"),
            "{err}"
        );
        let single = ConfigFile::parse("[stream]\nslot = \"s\"\n").unwrap();
        assert_eq!(single.for_stream(None).unwrap(), single);
        assert!(single.for_stream(Some("x")).is_err());
    }

    #[test]
    fn bad_streams_are_refused_with_the_fix() {
        for (text, wanted) in [
            ("[streams.Orders.stream]\nslot = \"s\"\n", "lowercase"),
            ("[streams]\norders = 1\n", "holds sections"),
            ("[streams.orders]\nslot = \"s\"\n", "expected a section"),
            (
                "[streams.orders.stream]\nnosuch = 1\n",
                "[streams.orders]: unknown key",
            ),
            (
                "[streams.orders.source]\npassword = \"x\"\n",
                "never read from the configuration",
            ),
        ] {
            let err = ConfigFile::parse(text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }
}
