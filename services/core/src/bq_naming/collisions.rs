//! The check that no two source objects land on one BigQuery name, and that no column lands on
//! a name BigQuery or pg2bq reserves.
//!
//! The naming rule maps many source names to one BigQuery name: `a_b.c` and `a.b_c` are both
//! `a_b_c` in the single-dataset layout, every non-ASCII character becomes `_` (`名前` and `名字`
//! are both `__`), and a name longer than BigQuery takes is cut. Without this check the writer
//! would write both objects into one table or one column, and the mirror would diverge silently.
//! `pg2bq profile test source` and `pg2bq stream create` refuse what it finds, with the fix: an
//! entry of the rename map ([`super::RenameMap`]).
//!
//! Names are compared without regard to case:
//! - columns, because BigQuery's column names are case-insensitive (`Total` and `total` cannot be
//!   two columns of one table);
//! - datasets and tables, because, although BigQuery names them case-sensitively by default, a
//!   dataset created with `is_case_insensitive` (by an operator, or by a default of the project)
//!   resolves its own name and its tables' names without regard to case. pg2bq does not create
//!   every dataset it writes to, so it cannot rely on case to keep two tables apart.
//!
//! A mirror table also claims its change table (`<table>__changes`, the staged merge strategy's),
//! so a source table named `x__changes` next to `x` collides with `x`'s change table.

use super::rename::quote_name;
use super::{
    BqTableName, CHANGE_TABLE_SUFFIX, DatasetLayout, LIVE_VIEW_SUFFIX, MAX_COLUMN_NAME_CHARS,
    MAX_MIRROR_TABLE_BYTES, RenameEntry, reserved_column,
};
use crate::wire::TableId;
use std::collections::{BTreeMap, HashSet};

/// A source table as the check sees it: its name and its replicated columns, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNames {
    /// The table.
    pub id: TableId,
    /// Its replicated columns (generated columns left out), by PostgreSQL name.
    pub columns: Vec<String>,
}

/// One problem with the BigQuery names of the selected tables, with an entry of the rename map
/// that solves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// Two source tables land in one BigQuery table, or one in the other's change table.
    Tables {
        /// The table that keeps its name.
        first: TableId,
        /// The table to rename.
        second: TableId,
        /// The BigQuery table of `first` (or its change table).
        bigquery: BqTableName,
        /// The BigQuery table of `second`, the same but for case.
        second_bigquery: BqTableName,
        /// Whether `bigquery` is `first`'s change table.
        change_table: bool,
        /// A rename of `second` that solves it.
        fix: RenameEntry,
        /// The BigQuery name the rename map gives `second` now, if any.
        replaces: Option<String>,
    },
    /// Two columns of one table land in one BigQuery column.
    Columns {
        /// The table.
        table: TableId,
        /// The column that keeps its name.
        first: String,
        /// The column to rename.
        second: String,
        /// The BigQuery column of `first`.
        bigquery: String,
        /// The BigQuery column of `second`, the same but for case.
        second_bigquery: String,
        /// A rename of `second` that solves it.
        fix: RenameEntry,
        /// The BigQuery name the rename map gives `second` now, if any.
        replaces: Option<String>,
    },
    /// A column lands on a name that BigQuery or pg2bq reserves.
    Reserved {
        /// The table.
        table: TableId,
        /// The column.
        column: String,
        /// Its BigQuery name.
        bigquery: String,
        /// Who reserves it, and what.
        reason: String,
        /// A rename of the column that solves it.
        fix: RenameEntry,
        /// The BigQuery name the rename map gives the column now, if any.
        replaces: Option<String>,
    },
}

impl NameProblem {
    /// The source object to rename: `schema.table` or `schema.table.column`, names quoted as in
    /// the rename map.
    pub fn subject(&self) -> String {
        self.rename().source()
    }

    /// What collides, naming both source objects and the BigQuery name.
    pub fn detail(&self) -> String {
        match self {
            NameProblem::Tables {
                first,
                second,
                bigquery,
                second_bigquery,
                change_table,
                ..
            } => {
                let (first, second) = (quoted_table(first), quoted_table(second));
                let (a, b) = (display_table(bigquery), display_table(second_bigquery));
                let written = if a == b {
                    format!("written to {a}")
                } else {
                    format!("written to {a} and {b}, names that differ only in case")
                };
                if *change_table {
                    let made = if bigquery.table.ends_with(LIVE_VIEW_SUFFIX) {
                        "live view"
                    } else {
                        "change table"
                    };
                    format!(
                        "BigQuery name collision: {second} and the {made} of {first} are both \
                         {written}"
                    )
                } else {
                    format!("BigQuery name collision: {first} and {second} are both {written}")
                }
            }
            NameProblem::Columns {
                table,
                first,
                second,
                bigquery,
                second_bigquery,
                ..
            } => {
                let written = if bigquery == second_bigquery {
                    format!("written to column {bigquery}")
                } else {
                    format!(
                        "written to columns {bigquery} and {second_bigquery}, which BigQuery \
                         takes for one (column names ignore case)"
                    )
                };
                format!(
                    "BigQuery name collision: columns {} and {} of {} are both {written}",
                    quote_name(first),
                    quote_name(second),
                    quoted_table(table)
                )
            }
            NameProblem::Reserved {
                table,
                column,
                bigquery,
                reason,
                ..
            } => format!(
                "BigQuery name collision: column {} of {} is written to column {bigquery}, but \
                 {reason}",
                quote_name(column),
                quoted_table(table)
            ),
        }
    }

    /// The rename that solves it.
    pub fn rename(&self) -> &RenameEntry {
        match self {
            NameProblem::Tables { fix, .. }
            | NameProblem::Columns { fix, .. }
            | NameProblem::Reserved { fix, .. } => fix,
        }
    }

    /// The BigQuery name the rename map gives the object to rename now, if any.
    pub fn replaces(&self) -> Option<&str> {
        match self {
            NameProblem::Tables { replaces, .. }
            | NameProblem::Columns { replaces, .. }
            | NameProblem::Reserved { replaces, .. } => replaces.as_deref(),
        }
    }

    /// How to fix it: an entry of the rename map.
    pub fn fix(&self) -> String {
        let what = match self {
            NameProblem::Tables { second, .. } => {
                format!("give {} another BigQuery table", quoted_table(second))
            }
            NameProblem::Columns { second, .. } | NameProblem::Reserved { column: second, .. } => {
                format!("give column {} another BigQuery name", quote_name(second))
            }
        };
        let rename = self.rename();
        let change = match self.replaces() {
            None => format!("add {rename} to"),
            Some(old) => format!("replace {}={old} with {rename} in", rename.source()),
        };
        format!(
            "{what}: {change} the rename map (PG2BQ_BQ_RENAME, or `rename` in [target] of the \
             configuration file) of the writer and of every pg2bq command"
        )
    }
}

fn display_table(table: &BqTableName) -> String {
    format!("{}.{}", table.dataset, table.table)
}

/// `schema.table`, each name quoted as in the rename map when it has to be.
fn quoted_table(table: &TableId) -> String {
    format!("{}.{}", quote_name(&table.schema), quote_name(&table.table))
}

/// Which BigQuery table a source table claims, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Claim {
    /// The change table or the live view of its mirror (sorted first: the mirror that lands on
    /// it is renamed).
    ChangeTable,
    /// Its mirror table.
    Mirror,
}

/// Every problem with the BigQuery names `layout` gives `tables`: pairs of tables, pairs of
/// columns of one table, and columns on reserved names. Each problem comes with a rename of one
/// of its objects; together the renames solve every problem (each suggested name is free).
/// Groups of three or more objects on one name give one problem per object renamed.
pub fn collisions(layout: &DatasetLayout, tables: &[SourceNames]) -> Vec<NameProblem> {
    let mut sorted: Vec<&SourceNames> = tables.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted.dedup_by(|a, b| a.id == b.id);
    let mut problems = table_collisions(layout, &sorted);
    for table in sorted {
        problems.extend(column_problems(layout, table));
    }
    problems
}

fn fold(table: &BqTableName) -> (String, String) {
    (table.dataset.to_lowercase(), table.table.to_lowercase())
}

/// A source table's claim on a BigQuery table.
type Claimant<'a> = (Claim, &'a TableId, BqTableName);

fn table_collisions(layout: &DatasetLayout, tables: &[&SourceNames]) -> Vec<NameProblem> {
    let mut claims: BTreeMap<(String, String), Vec<Claimant<'_>>> = BTreeMap::new();
    for table in tables {
        let mirror = layout.target(&table.id);
        let change = mirror.change_table();
        let view = mirror.live_view();
        claims
            .entry(fold(&mirror))
            .or_default()
            .push((Claim::Mirror, &table.id, mirror));
        claims
            .entry(fold(&change))
            .or_default()
            .push((Claim::ChangeTable, &table.id, change));
        claims
            .entry(fold(&view))
            .or_default()
            .push((Claim::ChangeTable, &table.id, view));
    }
    let mut taken: HashSet<(String, String)> = claims.keys().cloned().collect();
    let mut problems = Vec::new();
    for group in claims.values_mut() {
        group.sort();
        let (_, first, bigquery) = &group[0];
        for (claim, second, second_bigquery) in &group[1..] {
            // Two change tables meet only where their mirrors do: that is reported there.
            if *claim != Claim::Mirror {
                continue;
            }
            let target = free_table_name(second_bigquery, &mut taken);
            problems.push(NameProblem::Tables {
                first: (*first).clone(),
                second: (*second).clone(),
                bigquery: bigquery.clone(),
                second_bigquery: second_bigquery.clone(),
                change_table: group[0].0 == Claim::ChangeTable,
                fix: RenameEntry {
                    table: (*second).clone(),
                    column: None,
                    target,
                },
                replaces: layout.renames().table(second).map(str::to_owned),
            });
        }
    }
    problems
}

/// `<name>_2`, `<name>_3`, ...: the first whose table and change table are both free; taken.
fn free_table_name(table: &BqTableName, taken: &mut HashSet<(String, String)>) -> String {
    let dataset = table.dataset.to_lowercase();
    for n in 2.. {
        let candidate = numbered(&table.table, n, MAX_MIRROR_TABLE_BYTES);
        let mirror = (dataset.clone(), candidate.to_lowercase());
        let change = (
            dataset.clone(),
            format!("{candidate}{CHANGE_TABLE_SUFFIX}").to_lowercase(),
        );
        let view = (
            dataset.clone(),
            format!("{candidate}{LIVE_VIEW_SUFFIX}").to_lowercase(),
        );
        if !taken.contains(&mirror) && !taken.contains(&change) && !taken.contains(&view) {
            taken.insert(mirror);
            taken.insert(change);
            taken.insert(view);
            return candidate;
        }
    }
    unreachable!("some number is free")
}

/// `<base>_<n>`, with `base` cut so that the whole fits in `max` (ASCII) characters.
fn numbered(base: &str, n: usize, max: usize) -> String {
    let suffix = format!("_{n}");
    let keep = base.len().min(max - suffix.len());
    format!("{}{suffix}", &base[..keep])
}

fn column_problems(layout: &DatasetLayout, table: &SourceNames) -> Vec<NameProblem> {
    let names = layout.names(&table.id);
    let columns: Vec<(&String, String)> =
        table.columns.iter().map(|c| (c, names.column(c))).collect();
    let mut taken: HashSet<String> = columns.iter().map(|(_, b)| b.to_lowercase()).collect();
    let mut first_of: BTreeMap<String, (&String, &String)> = BTreeMap::new();
    let mut problems = Vec::new();
    let replaces = |column: &str| {
        layout
            .renames()
            .column(&table.id, column)
            .map(str::to_owned)
    };
    for (column, bigquery) in &columns {
        let fix = |base: &str, taken: &mut HashSet<String>| RenameEntry {
            table: table.id.clone(),
            column: Some((*column).clone()),
            target: free_column_name(base, taken),
        };
        if let Some(reserved) = reserved_column(bigquery) {
            let base = if bigquery.starts_with('_') {
                format!("source{bigquery}")
            } else {
                format!("source_{bigquery}")
            };
            problems.push(NameProblem::Reserved {
                table: table.id.clone(),
                column: (*column).clone(),
                bigquery: bigquery.clone(),
                reason: reserved.to_string(),
                fix: fix(&base, &mut taken),
                replaces: replaces(column),
            });
            continue;
        }
        match first_of.get(&bigquery.to_lowercase()) {
            None => {
                first_of.insert(bigquery.to_lowercase(), (column, bigquery));
            }
            Some((first, first_bigquery)) => problems.push(NameProblem::Columns {
                table: table.id.clone(),
                first: (*first).clone(),
                second: (*column).clone(),
                bigquery: (*first_bigquery).clone(),
                second_bigquery: bigquery.clone(),
                fix: fix(bigquery, &mut taken),
                replaces: replaces(column),
            }),
        }
    }
    problems
}

/// `<base>` if free, else `<base>_2`, `<base>_3`, ...; taken.
fn free_column_name(base: &str, taken: &mut HashSet<String>) -> String {
    let base = &base[..base.len().min(MAX_COLUMN_NAME_CHARS)];
    let candidates = std::iter::once(base.to_owned())
        .chain((2..).map(|n| numbered(base, n, MAX_COLUMN_NAME_CHARS)));
    for candidate in candidates {
        if reserved_column(&candidate).is_none() && taken.insert(candidate.to_lowercase()) {
            return candidate;
        }
    }
    unreachable!("some number is free")
}

/// Entries of the rename map that name no table of `tables` or no column of its table (a typo,
/// or a table not selected yet).
pub fn unused_renames(layout: &DatasetLayout, tables: &[SourceNames]) -> Vec<RenameEntry> {
    let known: BTreeMap<&TableId, &Vec<String>> =
        tables.iter().map(|t| (&t.id, &t.columns)).collect();
    layout
        .renames()
        .entries()
        .into_iter()
        .filter(|entry| match (known.get(&entry.table), &entry.column) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(columns), Some(column)) => !columns.contains(column),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bq_naming::RenameMap;

    fn table(schema: &str, name: &str, columns: &[&str]) -> SourceNames {
        SourceNames {
            id: TableId {
                schema: schema.into(),
                table: name.into(),
            },
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn single() -> DatasetLayout {
        DatasetLayout::from_settings(Some("mirror"), "").unwrap()
    }

    fn per_schema() -> DatasetLayout {
        DatasetLayout::from_settings(None, "pg_").unwrap()
    }

    /// The layout with every suggested rename added.
    fn fixed(layout: &DatasetLayout, problems: &[NameProblem]) -> DatasetLayout {
        let mut renames = layout.renames().clone();
        for p in problems {
            renames.insert(p.rename().clone()).unwrap();
        }
        layout.clone().with_renames(renames)
    }

    #[test]
    fn schema_and_table_underscores_meet_in_the_single_dataset() {
        let tables = [table("a_b", "c", &["id"]), table("a", "b_c", &["id"])];
        let problems = collisions(&single(), &tables);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let p = &problems[0];
        assert_eq!(
            p.detail(),
            "BigQuery name collision: a.b_c and a_b.c are both written to mirror.a_b_c"
        );
        assert_eq!(p.rename().to_string(), "a_b.c=a_b_c_2");
        assert!(
            p.fix()
                .contains("add a_b.c=a_b_c_2 to the rename map (PG2BQ_BQ_RENAME")
        );
        assert!(collisions(&fixed(&single(), &problems), &tables).is_empty());
        // A dataset per schema keeps them apart.
        assert!(collisions(&per_schema(), &tables).is_empty());
    }

    #[test]
    fn names_that_differ_only_in_case_collide() {
        let tables = [
            table("public", "Users", &["id", "Name", "name", "NAME"]),
            table("public", "users", &["id"]),
        ];
        for layout in [single(), per_schema()] {
            let problems = collisions(&layout, &tables);
            let details: Vec<String> = problems.iter().map(NameProblem::detail).collect();
            assert_eq!(problems.len(), 3, "{details:#?}");
            assert!(
                details[0].contains("public.Users and public.users are both written to")
                    && details[0].contains("names that differ only in case"),
                "{details:#?}"
            );
            assert_eq!(
                details[1],
                "BigQuery name collision: columns Name and name of public.Users are both written \
                 to columns Name and name, which BigQuery takes for one (column names ignore case)"
            );
            let renames: Vec<String> = problems.iter().map(|p| p.rename().to_string()).collect();
            assert_eq!(
                renames[1..],
                ["public.Users.name=name_2", "public.Users.NAME=NAME_3"]
            );
            assert!(collisions(&fixed(&layout, &problems), &tables).is_empty());
        }
    }

    #[test]
    fn non_ascii_names_all_become_underscores() {
        let tables = [
            table("public", "名前", &["名前", "名字", "id"]),
            table("public", "名字", &["id"]),
        ];
        let problems = collisions(&per_schema(), &tables);
        let details: Vec<String> = problems.iter().map(NameProblem::detail).collect();
        assert_eq!(
            details,
            [
                "BigQuery name collision: public.名前 and public.名字 are both written to pg_public.__",
                "BigQuery name collision: columns 名前 and 名字 of public.名前 are both written to column __"
            ]
        );
        assert_eq!(problems[0].rename().to_string(), "public.名字=___2");
        assert_eq!(problems[1].rename().to_string(), "public.名前.名字=___2");
        assert!(collisions(&fixed(&per_schema(), &problems), &tables).is_empty());
    }

    #[test]
    fn names_cut_to_bigquery_limits_collide() {
        let long = |tail: &str| format!("{}{tail}", "c".repeat(MAX_COLUMN_NAME_CHARS));
        let (a, b) = (long("_a"), long("_b"));
        let tables = [table("s", "t", &[&a, &b])];
        let problems = collisions(&per_schema(), &tables);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let target = &problems[0].rename().target;
        assert_eq!(target.len(), MAX_COLUMN_NAME_CHARS);
        assert!(target.ends_with("c_2"), "{target}");
        assert!(collisions(&fixed(&per_schema(), &problems), &tables).is_empty());

        let long_table = |tail: &str| format!("{}{tail}", "t".repeat(MAX_MIRROR_TABLE_BYTES));
        let tables = [
            table("s", &long_table("_x"), &["id"]),
            table("s", &long_table("_y"), &["id"]),
        ];
        let layout = per_schema();
        assert_eq!(
            layout.target(&tables[0].id).table.len(),
            MAX_MIRROR_TABLE_BYTES
        );
        let problems = collisions(&layout, &tables);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(collisions(&fixed(&layout, &problems), &tables).is_empty());
    }

    #[test]
    fn a_table_named_like_a_change_table_collides_with_it() {
        let tables = [
            table("s", "orders", &["id"]),
            table("s", "orders__changes", &["id"]),
        ];
        let problems = collisions(&per_schema(), &tables);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(
            problems[0].detail(),
            "BigQuery name collision: s.orders__changes and the change table of s.orders are both \
             written to pg_s.orders__changes"
        );
        assert_eq!(
            problems[0].rename().to_string(),
            "s.orders__changes=orders__changes_2"
        );
        assert!(collisions(&fixed(&per_schema(), &problems), &tables).is_empty());
        // Alone, such a table is fine.
        assert!(collisions(&per_schema(), &tables[1..]).is_empty());
        // So is one named like a live view.
        let tables = [
            table("s", "orders", &["id"]),
            table("s", "orders__live", &["id"]),
        ];
        let problems = collisions(&per_schema(), &tables);
        assert_eq!(
            problems[0].detail(),
            "BigQuery name collision: s.orders__live and the live view of s.orders are both \
             written to pg_s.orders__live"
        );
        assert!(collisions(&fixed(&per_schema(), &problems), &tables).is_empty());
    }

    #[test]
    fn columns_on_reserved_names_are_refused() {
        let tables = [table(
            "s",
            "t",
            &[
                "id",
                "_pg2bq_seq",
                "_PG2BQ_Op",
                "_partitiontime",
                "_change_type",
                "_table_x",
            ],
        )];
        let problems = collisions(&per_schema(), &tables);
        let renames: Vec<String> = problems.iter().map(|p| p.rename().to_string()).collect();
        assert_eq!(
            renames,
            [
                "s.t._pg2bq_seq=source_pg2bq_seq",
                "s.t._PG2BQ_Op=source_PG2BQ_Op",
                "s.t._partitiontime=source_partitiontime",
                "s.t._change_type=source_change_type",
                "s.t._table_x=source_table_x"
            ]
        );
        assert!(
            problems[0].detail().ends_with(
                "column names starting with _pg2bq_ are reserved for pg2bq's metadata columns"
            ),
            "{}",
            problems[0].detail()
        );
        assert!(collisions(&fixed(&per_schema(), &problems), &tables).is_empty());
    }

    #[test]
    fn renamed_names_are_checked_too() {
        let tables = [table("s", "a", &["x", "y"]), table("s", "b", &["id"])];
        let renames = RenameMap::parse("s.b=a, s.a.y=X").unwrap();
        let layout = per_schema().with_renames(renames);
        let problems = collisions(&layout, &tables);
        let details: Vec<String> = problems.iter().map(NameProblem::detail).collect();
        assert_eq!(
            details,
            [
                "BigQuery name collision: s.a and s.b are both written to pg_s.a",
                "BigQuery name collision: columns x and y of s.a are both written to columns x and \
                 X, which BigQuery takes for one (column names ignore case)"
            ]
        );
        // Each suggestion replaces the entry that collides.
        assert_eq!(problems[0].rename().to_string(), "s.b=a_2");
        assert_eq!(problems[0].replaces(), Some("a"));
        assert!(
            problems[0]
                .fix()
                .contains("replace s.b=a with s.b=a_2 in the rename map")
        );
        assert_eq!(problems[1].rename().to_string(), "s.a.y=X_2");
        let renames = RenameMap::parse(&format!(
            "{}, {}",
            problems[0].rename(),
            problems[1].rename()
        ))
        .unwrap();
        assert!(collisions(&per_schema().with_renames(renames), &tables).is_empty());
    }

    #[test]
    fn three_on_one_name_get_two_distinct_renames() {
        let tables = [
            table("s", "a-b", &["id"]),
            table("s", "a b", &["id"]),
            table("s", "a_b", &["id"]),
        ];
        let problems = collisions(&per_schema(), &tables);
        let renames: Vec<String> = problems.iter().map(|p| p.rename().to_string()).collect();
        assert_eq!(renames, ["s.a-b=a_b_2", "s.a_b=a_b_3"]);
        assert!(collisions(&fixed(&per_schema(), &problems), &tables).is_empty());
    }

    #[test]
    fn renames_of_nothing_selected_are_listed() {
        let tables = [table("s", "t", &["id"])];
        let renames = RenameMap::parse("s.t.id=key, s.t.gone=g, s.other=o").unwrap();
        let unused: Vec<String> = unused_renames(&per_schema().with_renames(renames), &tables)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(unused, ["s.other=o", "s.t.gone=g"]);
    }
}
