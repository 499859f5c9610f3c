//! The explicit rename map (`PG2BQ_BQ_RENAME`, `[target] rename`): a BigQuery name chosen for a
//! source table or column, in place of the one the naming rule would give.
//!
//! The map is a list of entries separated by commas (the configuration file's list items are
//! joined with commas):
//!
//! ```text
//! schema.table=bq_table                 a table
//! schema.table.column=bq_column         a column of a table
//! ```
//!
//! Source names are matched exactly as PostgreSQL stores them (case included, nothing is folded).
//! A name containing `.`, `=`, `,`, `"` or white space, or an empty name, is written in double
//! quotes, with `""` for a quote inside, as in SQL: `public."orders.2024"=orders_2024`,
//! `public.t."Total, net"=total_net`. White space around the separators is ignored. The BigQuery
//! name takes letters, digits and underscores and does not start with a digit; a table's is the
//! whole table name (the single-dataset layout adds no schema to it), and a column's must not use
//! a name or prefix that BigQuery or pg2bq reserves (see [`super::reserved_column`]).

use super::{MAX_COLUMN_NAME_CHARS, MAX_MIRROR_TABLE_BYTES, is_identifier, reserved_column};
use crate::error::{CoreError, Result};
use crate::wire::TableId;
use std::collections::BTreeMap;
use std::fmt;

/// The form of an entry, for error messages.
const SYNTAX: &str = "entries are schema.table=bq_table or schema.table.column=bq_column, \
     separated by commas; write a source name containing . = , \" or spaces in double quotes \
     (\"\" for a quote inside), e.g. public.\"orders.2024\"=orders_2024";

/// BigQuery names chosen for source tables and columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenameMap {
    tables: BTreeMap<TableId, String>,
    columns: BTreeMap<TableId, BTreeMap<String, String>>,
}

/// One entry of the map: a source table or column and its BigQuery name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RenameEntry {
    /// The source table.
    pub table: TableId,
    /// The column, for a column's entry.
    pub column: Option<String>,
    /// The BigQuery name.
    pub target: String,
}

impl RenameMap {
    /// Parses the values of the setting (each a comma-separated list of entries; the flag may be
    /// given more than once). An empty value is an empty map.
    pub fn parse_all<S: AsRef<str>>(values: &[S]) -> Result<Self> {
        let mut map = RenameMap::default();
        for value in values {
            for entry in parse_entries(value.as_ref())? {
                map.insert(entry)?;
            }
        }
        Ok(map)
    }

    /// Parses one comma-separated list of entries.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_all(&[text])
    }

    /// Adds an entry; a source renamed twice (to different names) is refused.
    pub fn insert(&mut self, entry: RenameEntry) -> Result<()> {
        check_target(&entry)?;
        let existing = match &entry.column {
            None => self.table(&entry.table),
            Some(column) => self.column(&entry.table, column),
        };
        if let Some(before) = existing {
            if before == entry.target {
                return Ok(());
            }
            return Err(CoreError::Config(format!(
                "rename map (PG2BQ_BQ_RENAME): {} is renamed twice, to {before} and to {}",
                entry.source(),
                entry.target
            )));
        }
        let RenameEntry {
            table,
            column,
            target,
        } = entry;
        match column {
            None => {
                self.tables.insert(table, target);
            }
            Some(column) => {
                self.columns
                    .entry(table)
                    .or_default()
                    .insert(column, target);
            }
        }
        Ok(())
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.columns.is_empty()
    }

    /// The BigQuery name chosen for a table, if any.
    pub fn table(&self, table: &TableId) -> Option<&str> {
        self.tables.get(table).map(String::as_str)
    }

    /// The BigQuery name chosen for a column of a table, if any.
    pub fn column(&self, table: &TableId, column: &str) -> Option<&str> {
        self.columns.get(table)?.get(column).map(String::as_str)
    }

    /// The columns renamed in a table: source name to BigQuery name.
    pub fn columns_of(&self, table: &TableId) -> BTreeMap<String, String> {
        self.columns.get(table).cloned().unwrap_or_default()
    }

    /// Every entry, tables first.
    pub fn entries(&self) -> Vec<RenameEntry> {
        let tables = self.tables.iter().map(|(table, target)| RenameEntry {
            table: table.clone(),
            column: None,
            target: target.clone(),
        });
        let columns = self.columns.iter().flat_map(|(table, columns)| {
            columns.iter().map(move |(column, target)| RenameEntry {
                table: table.clone(),
                column: Some(column.clone()),
                target: target.clone(),
            })
        });
        tables.chain(columns).collect()
    }
}

impl RenameEntry {
    /// The source object as written in an entry: `schema.table` or `schema.table.column`, each
    /// name quoted when it has to be.
    pub fn source(&self) -> String {
        let table = format!(
            "{}.{}",
            quote_name(&self.table.schema),
            quote_name(&self.table.table)
        );
        match &self.column {
            None => table,
            Some(column) => format!("{table}.{}", quote_name(column)),
        }
    }
}

impl fmt::Display for RenameEntry {
    /// The entry as it is written in the setting.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.source(), self.target)
    }
}

/// A source name as written in an entry: bare when it can be, else in double quotes.
pub fn quote_name(name: &str) -> String {
    if !name.is_empty() && name.chars().all(is_bare) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_bare(c: char) -> bool {
    !matches!(c, '.' | '=' | ',' | '"') && !c.is_whitespace()
}

/// Whether a BigQuery name may stand for a table, or for a column; the reason if not.
fn check_target(entry: &RenameEntry) -> Result<()> {
    let name = &entry.target;
    let problem = if !is_identifier(name) {
        Some("use letters, digits and underscores, not starting with a digit".to_owned())
    } else if entry.column.is_none() && name.len() > MAX_MIRROR_TABLE_BYTES {
        Some(format!(
            "a table name may have at most {MAX_MIRROR_TABLE_BYTES} bytes (BigQuery's 1024, less \
             the change table's suffix)"
        ))
    } else if entry.column.is_some() && name.chars().count() > MAX_COLUMN_NAME_CHARS {
        Some(format!(
            "a column name may have at most {MAX_COLUMN_NAME_CHARS} characters"
        ))
    } else if entry.column.is_some() {
        reserved_column(name).map(|reserved| reserved.to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(CoreError::Config(format!(
            "rename map (PG2BQ_BQ_RENAME): {entry}: '{name}' is not a name BigQuery can take for a {}: {problem}",
            if entry.column.is_some() {
                "column"
            } else {
                "table"
            }
        ))),
    }
}

/// Reads a comma-separated list of entries.
fn parse_entries(text: &str) -> Result<Vec<RenameEntry>> {
    let mut scanner = Scanner {
        chars: text.char_indices().collect(),
        text,
        at: 0,
    };
    let mut entries = Vec::new();
    loop {
        scanner.skip_space();
        match scanner.peek() {
            None => return Ok(entries),
            Some(',') => {
                scanner.at += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = scanner.at;
        let entry = scanner.entry().map_err(|problem| {
            CoreError::Config(format!(
                "rename map (PG2BQ_BQ_RENAME): malformed entry '{}': {problem}; {SYNTAX}",
                scanner.entry_text(start)
            ))
        })?;
        entries.push(entry);
    }
}

struct Scanner<'a> {
    chars: Vec<(usize, char)>,
    text: &'a str,
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|(_, c)| *c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// The text of the entry starting at `start`, up to the next comma outside quotes.
    fn entry_text(&self, start: usize) -> &str {
        let mut quoted = false;
        let mut end = self.chars.len();
        for (i, (_, c)) in self.chars.iter().enumerate().skip(start) {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let byte = |i: usize| self.chars.get(i).map_or(self.text.len(), |(b, _)| *b);
        self.text[byte(start)..byte(end)].trim()
    }

    /// `name.name[.name] = target`, followed by a comma or the end.
    fn entry(&mut self) -> std::result::Result<RenameEntry, String> {
        let mut names = vec![self.name()?];
        loop {
            self.skip_space();
            match self.peek() {
                Some('.') => {
                    self.at += 1;
                    self.skip_space();
                    names.push(self.name()?);
                }
                Some('=') => {
                    self.at += 1;
                    break;
                }
                Some(c) => return Err(format!("unexpected '{c}' in the source name")),
                None => return Err("no '=' and BigQuery name".to_owned()),
            }
        }
        self.skip_space();
        let mut target = String::new();
        while let Some(c) = self.peek().filter(|c| *c != ',' && !c.is_whitespace()) {
            target.push(c);
            self.at += 1;
        }
        self.skip_space();
        if let Some(c) = self.peek().filter(|c| *c != ',') {
            return Err(format!("unexpected '{c}' after the BigQuery name"));
        }
        if target.is_empty() {
            return Err("no BigQuery name after '='".to_owned());
        }
        let mut names = names.into_iter();
        match (names.next(), names.next(), names.next(), names.next()) {
            (Some(schema), Some(table), column, None) => Ok(RenameEntry {
                table: TableId { schema, table },
                column,
                target,
            }),
            (_, None, _, _) => Err("a table is named schema.table".to_owned()),
            _ => Err("more than three names (schema.table.column) before '='".to_owned()),
        }
    }

    /// A bare or double-quoted name.
    fn name(&mut self) -> std::result::Result<String, String> {
        let mut name = String::new();
        if self.peek() == Some('"') {
            self.at += 1;
            loop {
                match self.peek() {
                    None => return Err("a quoted name is not closed".to_owned()),
                    Some('"') if self.chars.get(self.at + 1).map(|(_, c)| *c) == Some('"') => {
                        name.push('"');
                        self.at += 2;
                    }
                    Some('"') => {
                        self.at += 1;
                        return Ok(name);
                    }
                    Some(c) => {
                        name.push(c);
                        self.at += 1;
                    }
                }
            }
        }
        while let Some(c) = self.peek().filter(|c| is_bare(*c)) {
            name.push(c);
            self.at += 1;
        }
        if name.is_empty() {
            return Err(match self.peek() {
                Some(c) => format!("a name is missing before '{c}'"),
                None => "a name is missing at the end".to_owned(),
            });
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(schema: &str, table: &str) -> TableId {
        TableId {
            schema: schema.into(),
            table: table.into(),
        }
    }

    #[test]
    fn tables_and_columns_with_bare_and_quoted_names() {
        let map = RenameMap::parse(
            r#" public.a_b.c = a_b_c_1, public."a.b_c"=ab_c,
                sales."Order ""Lines""".Total=total_2 ,,"x,y"."z="=xy"#,
        )
        .unwrap();
        assert_eq!(map.table(&id("public", "a_b")), None);
        assert_eq!(map.column(&id("public", "a_b"), "c"), Some("a_b_c_1"));
        assert_eq!(map.table(&id("public", "a.b_c")), Some("ab_c"));
        assert_eq!(
            map.column(&id("sales", "Order \"Lines\""), "Total"),
            Some("total_2")
        );
        assert_eq!(map.column(&id("sales", "Order \"Lines\""), "total"), None);
        assert_eq!(map.table(&id("x,y", "z=")), Some("xy"));
        // Every entry prints back as an entry that parses to itself.
        let printed: Vec<String> = map.entries().iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            [
                "public.\"a.b_c\"=ab_c",
                "\"x,y\".\"z=\"=xy",
                "public.a_b.c=a_b_c_1",
                "sales.\"Order \"\"Lines\"\"\".Total=total_2"
            ]
        );
        assert_eq!(RenameMap::parse(&printed.join(",")).unwrap(), map);
        assert!(RenameMap::parse("").unwrap().is_empty());
        assert!(
            RenameMap::parse_all(&["a.b=c", "a.b.c=d"])
                .unwrap()
                .entries()
                .len()
                == 2
        );
        assert_eq!(quote_name(""), "\"\"");
        assert_eq!(quote_name("名前"), "名前");
    }

    #[test]
    fn malformed_entries_are_refused_with_the_syntax() {
        for (text, problem) in [
            ("public.t", "no '=' and BigQuery name"),
            ("public=t", "a table is named schema.table"),
            ("a.b.c.d=x", "more than three names"),
            ("a..b=x", "a name is missing before '.'"),
            ("a.\"b=x", "a quoted name is not closed"),
            ("a.b=", "no BigQuery name after '='"),
            ("a.b=c d", "unexpected 'd' after the BigQuery name"),
            ("a b.c=x", "unexpected 'b' in the source name"),
        ] {
            let error = RenameMap::parse(text).unwrap_err().to_string();
            assert!(error.contains(problem), "{text}: {error}");
            assert!(error.contains("schema.table.column=bq_column"), "{error}");
        }
        let error = RenameMap::parse("ok.t=x, a b.c=x").unwrap_err().to_string();
        assert!(error.contains("malformed entry 'a b.c=x'"), "{error}");
    }

    #[test]
    fn targets_bigquery_cannot_take_are_refused() {
        for (text, problem) in [
            ("a.b=my-table", "letters, digits and underscores"),
            ("a.b=1t", "not starting with a digit"),
            ("a.b.c=_PARTITIONTIME", "reserved for BigQuery"),
            ("a.b.c=_pg2bq_seq", "reserved for pg2bq's metadata columns"),
            ("a.b.c=_change_type", "reserved for BigQuery"),
        ] {
            let error = RenameMap::parse(text).unwrap_err().to_string();
            assert!(error.contains(problem), "{text}: {error}");
        }
        let long = format!("a.b={}", "t".repeat(MAX_MIRROR_TABLE_BYTES + 1));
        assert!(RenameMap::parse(&long).is_err());
        let long = format!("a.b.c={}", "c".repeat(MAX_COLUMN_NAME_CHARS + 1));
        assert!(RenameMap::parse(&long).is_err());
        assert!(RenameMap::parse(&format!("a.b.c={}", "c".repeat(300))).is_ok());
        // A table may be renamed to a name that would be reserved for a column.
        assert!(RenameMap::parse("a.b=_partition_log").is_ok());
    }

    #[test]
    fn a_source_renamed_twice_is_refused() {
        let error = RenameMap::parse("a.b=x,a.b=y").unwrap_err().to_string();
        assert!(error.contains("a.b is renamed twice"), "{error}");
        assert!(RenameMap::parse("a.b=x, a.b=x").is_ok());
    }
}
