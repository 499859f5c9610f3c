//! Column protection (`PG2BQ_PROTECT`): chosen columns leave capture hashed or masked, so that
//! their clear values never reach Pub/Sub or BigQuery.
//!
//! The setting is a list of `<table>=<columns>` entries separated by `;`, where `<table>` is a
//! `schema.table` pattern (`*` and `?` wildcards, as in `PG2BQ_INCLUDE`) or `*`, and
//! `<columns>` is a comma-separated list of `column:method` (source column names):
//!
//! ```text
//! PG2BQ_PROTECT="public.users=email:hmac,phone:mask; *=ssn:hmac"
//! ```
//!
//! Methods:
//! - `hmac`: HMAC-SHA256, keyed with the bytes of `PG2BQ_PROTECT_KEY` (or of the Secret Manager
//!   secret `PG2BQ_PROTECT_KEY_SECRET` names), over the bytes of the value's text: PostgreSQL's
//!   output form of the value under pg2bq's session settings (UTF-8), the text capture would
//!   otherwise send. The result is the 64 lowercase hex digits of the code. It is deterministic,
//!   so a hashed key column still identifies its row (merges and deletes by key work).
//! - `mask` or `mask(<text>)`: the fixed text (default `****`; it cannot hold `,`, `;` or `)`).
//!   A key column cannot be masked (every row would have the same key).
//!
//! NULL stays NULL, and an unchanged TOASTed value stays unchanged. A protected column is a
//! STRING column in BigQuery whatever its PostgreSQL type: capture describes it as `text`.
//! For a column named by several entries, the first entry (in the order written) that matches
//! the table decides.

use crate::config::Secret;
use crate::error::{CoreError, Result};
use crate::selection::TablePattern;
use crate::wire::{ColumnSpec, TableId, Value};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// The mask written when `mask` names no text.
pub const DEFAULT_MASK: &str = "****";

/// Fewest bytes a key may have.
pub const MIN_KEY_BYTES: usize = 16;

/// How one column is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// HMAC-SHA256 of the value's text, lowercase hex.
    Hmac,
    /// This fixed text.
    Mask(String),
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Hmac => f.write_str("hmac"),
            Method::Mask(text) => write!(f, "mask({text})"),
        }
    }
}

/// One entry: a table pattern (`None`: `*`) and its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    table: Option<TablePattern>,
    /// The pattern names one table (no wildcard): its columns must exist.
    exact: bool,
    columns: Vec<(String, Method)>,
}

/// `PG2BQ_PROTECT`, parsed (no key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectSetting {
    entries: Vec<Entry>,
}

fn config(message: impl fmt::Display) -> CoreError {
    CoreError::Config(format!("PG2BQ_PROTECT: {message}"))
}

impl ProtectSetting {
    /// Parses the setting (an empty text protects nothing).
    pub fn parse(text: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (table, spec) = entry.split_once('=').ok_or_else(|| {
                config(format!(
                    "`{entry}` is not `<schema.table or *>=<column>:<hmac|mask>,...`, e.g. \
                     public.users=email:hmac,phone:mask"
                ))
            })?;
            let table = table.trim();
            let exact = !table.contains(['*', '?']);
            let table = match table {
                "*" => None,
                _ if table.contains('.') => Some(TablePattern::parse(table).map_err(config)?),
                _ => {
                    return Err(config(format!(
                        "`{table}` is neither a `schema.table` pattern nor `*`"
                    )));
                }
            };
            let mut columns = Vec::new();
            for item in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let (column, method) = item.rsplit_once(':').ok_or_else(|| {
                    config(format!(
                        "`{item}` is not `<column>:hmac` or `<column>:mask` (or mask(<text>))"
                    ))
                })?;
                let column = column.trim();
                if column.is_empty() {
                    return Err(config(format!("`{item}` names no column")));
                }
                columns.push((column.to_owned(), parse_method(method.trim())?));
            }
            if columns.is_empty() {
                return Err(config(format!("`{entry}` names no column")));
            }
            entries.push(Entry {
                table,
                exact,
                columns,
            });
        }
        Ok(ProtectSetting { entries })
    }

    /// Whether nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some column is hashed (a key is needed).
    pub fn hashes(&self) -> bool {
        self.entries
            .iter()
            .flat_map(|e| &e.columns)
            .any(|(_, m)| *m == Method::Hmac)
    }

    /// The method of each column of `table` (`None`: not protected), in `columns`' order.
    fn methods(&self, table: &TableId, columns: &[ColumnSpec]) -> Vec<Option<Method>> {
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.table.as_ref().is_none_or(|p| p.matches(table)))
            .collect();
        columns
            .iter()
            .map(|c| {
                matching
                    .iter()
                    .flat_map(|e| &e.columns)
                    .find(|(name, _)| *name == c.name)
                    .map(|(_, m)| m.clone())
            })
            .collect()
    }
}

fn parse_method(text: &str) -> Result<Method> {
    if text.eq_ignore_ascii_case("hmac") {
        return Ok(Method::Hmac);
    }
    if text.eq_ignore_ascii_case("mask") {
        return Ok(Method::Mask(DEFAULT_MASK.to_owned()));
    }
    let mask = text
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("mask("))
        .and_then(|_| text[5..].strip_suffix(')'));
    match mask {
        Some(mask) if !mask.contains(')') => Ok(Method::Mask(mask.to_owned())),
        _ => Err(config(format!(
            "`{text}` is not a protection method: write hmac, mask or mask(<text>)"
        ))),
    }
}

/// The protection of a stream: its setting and key. `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct Protection {
    setting: ProtectSetting,
    key: Option<Hmac<Sha256>>,
}

impl fmt::Debug for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protection")
            .field("setting", &self.setting)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Protection {
    /// The protection of `setting` with `key` (needed when a column is hashed).
    pub fn new(setting: ProtectSetting, key: Option<&Secret>) -> Result<Self> {
        let key = key.map(Secret::expose).filter(|k| !k.is_empty());
        let key = match key {
            None if setting.hashes() => {
                return Err(config(
                    "columns are hashed (hmac) and no key is set: set PG2BQ_PROTECT_KEY in the \
                     environment, or PG2BQ_PROTECT_KEY_SECRET to a Secret Manager secret \
                     (projects/<project>/secrets/<name>/versions/latest); the key is never read \
                     from the configuration file",
                ));
            }
            None => None,
            Some(key) if key.len() < MIN_KEY_BYTES => {
                return Err(config(format!(
                    "the protection key is shorter than {MIN_KEY_BYTES} bytes: use a long \
                     random key, e.g. `openssl rand -hex 32`"
                )));
            }
            Some(key) => Some(
                Hmac::<Sha256>::new_from_slice(key.as_bytes())
                    .map_err(|_| config("the protection key cannot key HMAC-SHA256"))?,
            ),
        };
        Ok(Protection { setting, key })
    }

    /// Whether nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.setting.is_empty()
    }

    /// What protects `table`'s `columns`, safe to store and show: `column:method` of each
    /// protected column, comma-separated, and when some are hashed the key's check value
    /// ([`Protection::key_check`]); empty when no column is protected.
    pub fn describe_table(&self, table: &TableId, columns: &[ColumnSpec]) -> String {
        let methods = self.setting.methods(table, columns);
        let described: Vec<String> = columns
            .iter()
            .zip(&methods)
            .filter_map(|(c, m)| Some(format!("{}:{}", c.name, m.as_ref()?)))
            .collect();
        let mut text = described.join(",");
        if methods.contains(&Some(Method::Hmac))
            && let Some(check) = self.key_check()
        {
            text.push_str(&format!(" (key check {check})"));
        }
        text
    }

    /// A check value of the key, safe to store and show (the first 16 hex digits of the HMAC
    /// of `pg2bq protection key check`): whether two keys are the same. `None` when no column
    /// is hashed.
    pub fn key_check(&self) -> Option<String> {
        let mut mac = self.key.clone().filter(|_| self.setting.hashes())?;
        mac.update(b"pg2bq protection key check");
        let check = hex(&mac.finalize().into_bytes());
        Some(check[..16].to_owned())
    }

    /// The protection of `table` with `columns`, or `None` when none of its columns is
    /// protected.
    pub fn table(&self, table: &TableId, columns: &[ColumnSpec]) -> Option<TableProtection> {
        if self.is_empty() {
            return None;
        }
        let methods = self.setting.methods(table, columns);
        methods
            .iter()
            .any(Option::is_some)
            .then(|| TableProtection {
                methods,
                key: self.key.clone(),
            })
    }

    /// Checks the protection of a table: a column that an entry naming the table itself (no
    /// wildcard) protects must exist (a misspelt name would leave the column clear), and a key
    /// column cannot be masked.
    pub fn check(&self, table: &TableId, columns: &[ColumnSpec]) -> Result<()> {
        let named = self
            .setting
            .entries
            .iter()
            .filter(|e| e.exact && e.table.as_ref().is_some_and(|p| p.matches(table)))
            .flat_map(|e| &e.columns);
        for (name, _) in named {
            if !columns.iter().any(|c| c.name == *name) {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                return Err(config(format!(
                    "{table} has no column {name} (its columns: {}); correct the name, or \
                     remove it",
                    names.join(", ")
                )));
            }
        }
        for (column, method) in columns.iter().zip(self.setting.methods(table, columns)) {
            if column.key && matches!(method, Some(Method::Mask(_))) {
                return Err(config(format!(
                    "column {} of {table} is a key column and cannot be masked (every row would \
                     have the same key): hash it (`{}:hmac`) or leave it clear",
                    column.name, column.name
                )));
            }
        }
        Ok(())
    }
}

/// The protection of one table's columns.
#[derive(Clone)]
pub struct TableProtection {
    methods: Vec<Option<Method>>,
    key: Option<Hmac<Sha256>>,
}

impl fmt::Debug for TableProtection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableProtection")
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl TableProtection {
    /// The method of the column at `position`, if it is protected.
    pub fn method(&self, position: usize) -> Option<&Method> {
        self.methods.get(position).and_then(Option::as_ref)
    }

    /// Describes protected columns as `text` (BigQuery STRING).
    pub fn protect_columns(&self, columns: &mut [ColumnSpec]) {
        for (i, column) in columns.iter_mut().enumerate() {
            if self.method(i).is_some() {
                column.pg_type = "text".to_owned();
                column.type_modifier = -1;
            }
        }
    }

    /// Protects the values of a row (NULL and unchanged TOAST values stay as they are).
    pub fn protect_row(&self, row: &mut [Value]) {
        for (i, value) in row.iter_mut().enumerate() {
            let bytes = match value {
                Value::Text(text) => text.as_bytes(),
                Value::InvalidUtf8(bytes) => bytes.as_slice(),
                Value::Null | Value::UnchangedToast => continue,
            };
            if let Some(protected) = self.protect(i, bytes) {
                *value = Value::Text(protected);
            }
        }
    }

    /// The protected text of the value (its text's bytes) of the column at `position`, or
    /// `None` when the column is not protected.
    pub fn protect(&self, position: usize, bytes: &[u8]) -> Option<String> {
        Some(match self.method(position)? {
            Method::Mask(text) => text.clone(),
            Method::Hmac => {
                // A hashing protection always has a key (`Protection::new` checks it); without
                // one the value is masked rather than sent clear.
                let Some(mut mac) = self.key.clone() else {
                    return Some(DEFAULT_MASK.to_owned());
                };
                mac.update(bytes);
                hex(&mac.finalize().into_bytes())
            }
        })
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The protection settings every binary reads: which columns, and the key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProtectArgs {
    /// Columns to hash or mask before they leave capture: `;`-separated
    /// `<schema.table pattern or *>=<column>:<hmac|mask|mask(text)>,...` entries.
    #[arg(long = "protect", env = "PG2BQ_PROTECT", value_name = "ENTRIES")]
    pub protect: Option<String>,
    /// Key of `hmac` protection, from the environment only.
    #[arg(
        long = "protect-key",
        env = "PG2BQ_PROTECT_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub key: Option<Secret>,
    /// A Secret Manager reference (`projects/<p>/secrets/<s>/versions/<v>`) to read the key from
    /// when `PG2BQ_PROTECT_KEY` is not set.
    #[arg(long = "protect-key-secret", env = "PG2BQ_PROTECT_KEY_SECRET")]
    pub key_secret: Option<String>,
}

impl ProtectArgs {
    /// The protection these settings describe, reading the key from Secret Manager when a
    /// reference is set and no key is.
    pub async fn resolve(&self) -> Result<Protection> {
        let setting = ProtectSetting::parse(self.protect.as_deref().unwrap_or_default())?;
        let key = match (&self.key, self.key_secret.as_deref()) {
            (Some(key), _) if !key.expose().is_empty() => Some(key.clone()),
            (_, Some(reference)) if setting.hashes() && !reference.trim().is_empty() => {
                let reference = crate::secret_manager::SecretReference::parse(reference)?;
                Some(crate::secret_manager::access(&reference).await?)
            }
            _ => None,
        };
        Protection::new(setting, key.as_ref())
    }
}

#[cfg(test)]
mod tests;
