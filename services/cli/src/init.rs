//! `pg2bq init`: writes a commented example configuration file.

use crate::error::{CliError, Result};
use std::path::Path;

/// The example configuration: every key, its environment variable and what it does.
pub const EXAMPLE: &str = include_str!("../pg2bq.example.toml");

/// Writes [`EXAMPLE`] to `path`; an existing file is kept unless `force`.
pub fn write_example(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(CliError::Config(format!(
            "{} exists; keep it, or overwrite it with `pg2bq init --force`",
            path.display()
        )));
    }
    std::fs::write(path, EXAMPLE)
        .map_err(|e| CliError::Config(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::config_file::{ConfigFile, SETTINGS};

    #[test]
    fn the_example_is_a_valid_configuration() {
        let file = ConfigFile::parse(EXAMPLE).expect("the example parses");
        assert_eq!(file.get("PG2BQ_SLOT"), Some("pg2bq"));
        assert_eq!(file.get("PG2BQ_INCLUDE"), Some("public.*"));
    }

    #[test]
    fn the_example_documents_every_setting() {
        for setting in SETTINGS {
            let line = EXAMPLE.lines().find(|l| {
                l.trim_start_matches(['#', ' '])
                    .starts_with(&format!("{} = ", setting.key))
                    && l.contains(setting.env)
            });
            assert!(
                line.is_some(),
                "{}.{} ({}) is not in the example",
                setting.section,
                setting.key,
                setting.env
            );
        }
    }

    #[test]
    fn the_example_is_uncommented_without_secrets() {
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| l.trim_start_matches("# "))
            .collect::<Vec<_>>()
            .join("\n");
        // Uncommenting everything but section-less notes must still parse, and hold no password.
        let settings: String = uncommented
            .lines()
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .collect::<Vec<_>>()
            .join("\n");
        ConfigFile::parse(&settings).expect("every example line is a valid setting");
        assert!(!settings.contains("password ="));
    }
}
