//! The publication: exactly the tables the include/exclude patterns select, kept in step when
//! the patterns change or matching tables are created.
//!
//! A publication that someone made `FOR ALL TABLES` or `FOR TABLES IN SCHEMA` is left as it is
//! (with a warning): pg2bq only manages publications that list their tables.
//!
//! Tables whose UPDATE and DELETE would fail once published (no replica identity, see
//! [`crate::catalog::publishable`]) never join, and leave it if they lose their key: pg2bq must
//! never make the application's statements fail. [`Reconciled::skipped`] lists them with the fix.
//!
//! On PostgreSQL 15+ each table carries the column list and row filter of the column selection
//! ([`crate::publication_columns`]); a table whose list or filter changes leaves and joins again
//! in one transaction, and is reported in [`Reconciled::changed`] (to be copied again).
//!
//! On PostgreSQL 18+ the publication sends stored generated columns
//! (`publish_generated_columns = stored`), which the catalogue reader then describes as columns
//! ([`crate::catalog::generated`]); a publication created before gets the option, also one
//! managed elsewhere, since the catalogue describes them for every publication.
//!
//! Partitioned tables are published through their root or as leaves ([`Partitions`]), fixed
//! when the publication is made: a stream asking for the other on a live publication is refused
//! with the fix.
//!
//! pg2bq's state schema is never replicated, except for the freshness probe table
//! ([`pg2bq_core::probe`]): once `pg2bq validate --freshness` has created it, it stays in the
//! publication whatever the patterns say.

use crate::catalog::generated::STORED_GENERATED_FROM;
use crate::catalog::{
    Catalog, SourceTable, Unpublishable, candidate_tables, table_id, tables::quoted, unpublishable,
};
use crate::error::{Result, SourceError};
use crate::publication_columns::{
    LISTS_VERSION, PublishedSpec, WantedSpec, check_version, excluded_identity,
    filter_outside_identity, published_specs,
};
use pg2bq_core::pg_connect::quote_ident;
use pg2bq_core::probe::freshness_probe;
use pg2bq_core::selection::{Partitions, TableSelection};
use pg2bq_core::wire::TableId;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

/// The publication as it is: its OID, its listed tables, whether it is managed by schema or
/// for all tables, and its `publish_via_partition_root`.
struct Current {
    oid: u32,
    tables: BTreeSet<TableId>,
    managed_elsewhere: bool,
    via_root: bool,
}

/// Tables currently listed in the publication, or `None` if it does not exist.
async fn published_tables(client: &Client, publication: &str) -> Result<Option<Current>> {
    let Some(row) = client
        .query_opt(
            "SELECT p.oid, p.puballtables, p.pubviaroot, \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'pg_publication_namespace' \
                            AND relnamespace = 'pg_catalog'::regnamespace) \
             FROM pg_catalog.pg_publication p WHERE p.pubname = $1",
            &[&publication],
        )
        .await
        .map_err(SourceError::postgres("looking up the publication"))?
    else {
        return Ok(None);
    };
    let oid: u32 = row.get(0);
    let all_tables: bool = row.get(1);
    let via_root: bool = row.get(2);
    let has_namespaces_catalog: bool = row.get(3);
    let by_schema = if has_namespaces_catalog {
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace WHERE pnpubid = $1)",
                &[&oid],
            )
            .await
            .map_err(SourceError::postgres("looking up the publication's schemas"))?
            .get(0)
    } else {
        false
    };
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_publication_rel pr \
             JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE pr.prpubid = $1",
            &[&oid],
        )
        .await
        .map_err(SourceError::postgres("listing the publication's tables"))?;
    Ok(Some(Current {
        oid,
        tables: rows.iter().map(table_id).collect(),
        managed_elsewhere: all_tables || by_schema,
        via_root,
    }))
}

/// The tables as `FOR TABLE` and `ADD TABLE` take them, with their column lists and filters.
/// Refuses a publication whose `publish_via_partition_root` is not the stream's choice: changing
/// it on a live publication would send changes under other table names than the ones the
/// stream backfilled and mirrors.
fn check_partitions(publication: &str, published: &Current, wanted: Partitions) -> Result<()> {
    if published.via_root == wanted.via_root() {
        return Ok(());
    }
    let now = if published.via_root {
        Partitions::Root
    } else {
        Partitions::Leaves
    };
    Err(SourceError::Setting(format!(
        "PG2BQ_PARTITIONS is '{wanted}', but publication \"{publication}\" replicates partitioned tables \
         as '{now}' (publish_via_partition_root = {via_root}); pg2bq does not change that on a live \
         publication, because changes would then arrive under other tables than the ones BigQuery \
         mirrors. Fix: set PG2BQ_PARTITIONS={now} again; or, to replicate them as '{wanted}', make \
         a new stream (new slot, publication and datasets; `pg2bq stream delete --drop-slot \
         --drop-publication` removes this one)",
        wanted = wanted.as_str(),
        now = now.as_str(),
        via_root = published.via_root,
    )))
}

fn table_list(tables: &BTreeSet<TableId>, specs: &Specs) -> String {
    tables
        .iter()
        .map(|t| specs.wanted(t).sql(t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Tables that joined the publication (to be backfilled).
    pub added: Vec<TableId>,
    /// Tables that left it (no longer selected, or no longer publishable).
    pub removed: Vec<TableId>,
    /// Selected tables kept out of it because publishing them would make their UPDATE and
    /// DELETE fail, with the fix.
    pub skipped: Vec<Unpublishable>,
    /// Tables that stayed in it with another column list or row filter (to be copied again:
    /// a column newly replicated, or rows newly matching, have no change in the stream).
    pub changed: Vec<TableId>,
}

/// The column lists and row filters wanted, and what the publication holds (PostgreSQL 15+).
#[derive(Default)]
struct Specs {
    lists: bool,
    described: Vec<SourceTable>,
    wanted: BTreeMap<TableId, WantedSpec>,
    published: BTreeMap<TableId, PublishedSpec>,
}

impl Specs {
    fn wanted(&self, table: &TableId) -> WantedSpec {
        if !self.lists {
            return WantedSpec::default();
        }
        self.wanted.get(table).cloned().unwrap_or_default()
    }
}

/// Creates the publication or brings its table list (and on PostgreSQL 15+ its column lists
/// and row filters) in step with the selection, leaving out (and taking out) the selected tables
/// that cannot be published safely.
pub async fn reconcile(
    client: &Client,
    publication: &str,
    selection: &TableSelection,
    state_schema: &str,
) -> Result<Reconciled> {
    let probe = freshness_probe(state_schema);
    let selected: Vec<TableId> = candidate_tables(client, state_schema, selection.partitions())
        .await?
        .into_iter()
        .filter(|c| c.selected_by(selection) || c.table == probe)
        .map(|c| c.table)
        .collect();
    let rules = selection.columns();
    let version = crate::server::version_num(client).await?;
    check_version(rules, version)?;
    let mut skipped = unpublishable(client, &selected).await?;
    let mut specs = Specs {
        lists: version >= LISTS_VERSION,
        ..Specs::default()
    };
    if !rules.is_empty() {
        let selected: Vec<TableId> = selected.iter().filter(|t| **t != probe).cloned().collect();
        specs.described = Catalog::with_rules(rules.clone())
            .describe(client, &selected)
            .await?;
        for refused in excluded_identity(rules, &specs.described) {
            if !skipped.iter().any(|s| s.table == refused.table) {
                skipped.push(refused);
            }
        }
        specs.wanted = specs
            .described
            .iter()
            .map(|t| (t.id.clone(), WantedSpec::of(t)))
            .collect();
    }
    let wanted: BTreeSet<TableId> = selected
        .into_iter()
        .filter(|t| !skipped.iter().any(|s| s.table == *t))
        .collect();
    let name = quote_ident(publication);
    let Some(current) = published_tables(client, publication).await? else {
        let tables = if wanted.is_empty() {
            tracing::warn!(publication, "no table matches the include patterns yet");
            String::new()
        } else {
            format!(" FOR TABLE {}", table_list(&wanted, &specs))
        };
        let generated = if publishes_stored_generated(version) {
            ", publish_generated_columns = stored"
        } else {
            ""
        };
        let sql = format!(
            "CREATE PUBLICATION {name}{tables} WITH (publish_via_partition_root = {}{generated})",
            selection.partitions().via_root()
        );
        let mut added: Vec<TableId> = wanted.into_iter().collect();
        let mut removed = BTreeSet::new();
        let mut changed = Vec::new();
        let mut applied = Applied {
            publication,
            added: &mut added,
            removed: &mut removed,
            skipped: &mut skipped,
            changed: &mut changed,
        };
        applied
            .apply(client, &[sql], &specs, &BTreeSet::new())
            .await?;
        tracing::info!(publication, tables = added.len(), "created publication");
        return Ok(Reconciled {
            added,
            removed: Vec::new(),
            skipped,
            changed: Vec::new(),
        });
    };
    check_partitions(publication, &current, selection.partitions())?;
    send_stored_generated(client, publication, version).await?;
    if current.managed_elsewhere {
        tracing::warn!(
            publication,
            "the publication is FOR ALL TABLES or FOR TABLES IN SCHEMA: include/exclude patterns, \
             column selections and row filters are not applied to it"
        );
        return Ok(Reconciled {
            skipped: skipped
                .into_iter()
                .filter(|s| current.tables.contains(&s.table))
                .collect(),
            ..Reconciled::default()
        });
    }
    if specs.lists {
        specs.published = published_specs(client, current.oid).await?;
    }
    let respec: BTreeSet<TableId> = if specs.lists {
        wanted
            .intersection(&current.tables)
            .filter(|t| {
                let published = specs.published.get(*t).cloned().unwrap_or_default();
                !specs.wanted(t).matches(publication, t, &published)
            })
            .cloned()
            .collect()
    } else {
        BTreeSet::new()
    };
    if current.tables == wanted && respec.is_empty() {
        return Ok(Reconciled {
            skipped,
            ..Reconciled::default()
        });
    }
    let added: Vec<TableId> = wanted.difference(&current.tables).cloned().collect();
    let mut removed: BTreeSet<TableId> = current.tables.difference(&wanted).cloned().collect();
    // Tables leave first: a table that lost its key must stop being published at once. A table
    // whose column list or row filter changes leaves and joins again in the same transaction.
    let mut statements = Vec::new();
    let leaving: BTreeSet<TableId> = removed.union(&respec).cloned().collect();
    if !leaving.is_empty() {
        statements.push(format!(
            "ALTER PUBLICATION {name} DROP TABLE {}",
            table_list(&leaving, &Specs::default())
        ));
    }
    let joining: BTreeSet<TableId> = added.iter().chain(&respec).cloned().collect();
    if !joining.is_empty() {
        statements.push(format!(
            "ALTER PUBLICATION {name} ADD TABLE {}",
            table_list(&joining, &specs)
        ));
    }
    let mut added = added;
    let mut changed = Vec::new();
    let mut applied = Applied {
        publication,
        added: &mut added,
        removed: &mut removed,
        skipped: &mut skipped,
        changed: &mut changed,
    };
    applied.apply(client, &statements, &specs, &respec).await?;
    let added_names: Vec<String> = added.iter().map(ToString::to_string).collect();
    let removed_names: Vec<String> = removed.iter().map(ToString::to_string).collect();
    let changed_names: Vec<String> = changed.iter().map(ToString::to_string).collect();
    tracing::info!(publication, added = ?added_names, removed = ?removed_names,
        changed = ?changed_names, "publication follows the table selection");
    Ok(Reconciled {
        added,
        removed: removed.into_iter().collect(),
        skipped,
        changed,
    })
}

/// The outcome of [`Applied::apply`], filled in as it goes.
struct Applied<'a> {
    publication: &'a str,
    added: &'a mut Vec<TableId>,
    removed: &'a mut BTreeSet<TableId>,
    skipped: &'a mut Vec<Unpublishable>,
    changed: &'a mut Vec<TableId>,
}

impl Applied<'_> {
    /// Runs `statements` in one transaction. A joining table is locked against DDL by the ADD;
    /// if it lost its key between the check and the ADD, it leaves again before the commit (so
    /// no application statement ever runs against it published without a replica identity). So
    /// does a table whose row filter reads a column outside its replica identity. `respec`: the
    /// tables that left and joined again, `changed` if their spec is another now.
    async fn apply(
        &mut self,
        client: &Client,
        statements: &[String],
        specs: &Specs,
        respec: &BTreeSet<TableId>,
    ) -> Result<()> {
        let publication = self.publication;
        let context = || format!("updating publication {publication}");
        client
            .batch_execute("BEGIN")
            .await
            .map_err(SourceError::postgres(context()))?;
        let outcome = async {
            for sql in statements {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(SourceError::postgres(context()))?;
            }
            let joined: Vec<TableId> = self.added.iter().chain(respec).cloned().collect();
            let mut lost = unpublishable(client, &joined).await?;
            let mut now = BTreeMap::new();
            if specs.lists && !specs.described.is_empty() {
                let oid: u32 = client
                    .query_one(
                        "SELECT oid FROM pg_catalog.pg_publication WHERE pubname = $1",
                        &[&publication],
                    )
                    .await
                    .map_err(SourceError::postgres(context()))?
                    .get(0);
                now = published_specs(client, oid).await?;
                let joined_tables: Vec<SourceTable> = specs
                    .described
                    .iter()
                    .filter(|t| joined.contains(&t.id))
                    .cloned()
                    .collect();
                for refused in filter_outside_identity(&joined_tables, &now) {
                    if !lost.iter().any(|l| l.table == refused.table) {
                        lost.push(refused);
                    }
                }
            }
            if !lost.is_empty() {
                let lost_set: BTreeSet<TableId> = lost.iter().map(|l| l.table.clone()).collect();
                client
                    .batch_execute(&format!(
                        "ALTER PUBLICATION {} DROP TABLE {}",
                        quote_ident(publication),
                        table_list(&lost_set, &Specs::default())
                    ))
                    .await
                    .map_err(SourceError::postgres(context()))?;
                self.added.retain(|t| !lost_set.contains(t));
                self.removed
                    .extend(lost_set.iter().filter(|t| respec.contains(*t)).cloned());
                self.skipped.extend(lost);
            }
            for table in respec.iter().filter(|t| !self.removed.contains(*t)) {
                let before = specs.published.get(table).cloned().unwrap_or_default();
                let after = now.get(table).cloned().unwrap_or_default();
                specs.wanted(table).remember(publication, table, &after);
                if before.columns != after.columns || before.filter != after.filter {
                    self.changed.push(table.clone());
                }
            }
            for table in self.added.iter() {
                if let Some(after) = now.get(table) {
                    specs.wanted(table).remember(publication, table, after);
                }
            }
            Ok(())
        }
        .await;
        let ended = crate::transaction::end(client, outcome.is_ok())
            .await
            .map_err(SourceError::postgres(context()));
        outcome.and(ended)
    }
}

/// Whether publications of a server of `version` (`server_version_num`) can send stored
/// generated columns (PostgreSQL 18+).
fn publishes_stored_generated(version: i32) -> bool {
    version >= STORED_GENERATED_FROM
}

/// On PostgreSQL 18+, makes `publication` send stored generated columns if it does not yet
/// (created before, by an older pg2bq or on an older server). Its tables' next Relation
/// messages show the columns as added, and capture copies the tables again to fill them.
async fn send_stored_generated(client: &Client, publication: &str, version: i32) -> Result<()> {
    if !publishes_stored_generated(version) {
        return Ok(());
    }
    let sends: bool = client
        .query_one(
            "SELECT pubgencols::text = 's' FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(SourceError::postgres(
            "looking up the publication's options",
        ))?
        .get(0);
    if sends {
        return Ok(());
    }
    client
        .batch_execute(&format!(
            "ALTER PUBLICATION {} SET (publish_generated_columns = stored)",
            quote_ident(publication)
        ))
        .await
        .map_err(SourceError::postgres(format!(
            "making publication {publication} send stored generated columns (this needs the \
             publication's owner; or run ALTER PUBLICATION ... SET (publish_generated_columns = \
             stored) as its owner)"
        )))?;
    tracing::info!(
        publication,
        "the publication now sends stored generated columns (PostgreSQL 18): tables with one are copied again to fill them"
    );
    Ok(())
}

/// Adds one table to the publication if it is not in it (the freshness probe); returns whether
/// it was added. Needs the publication's owner.
pub async fn ensure_published(client: &Client, publication: &str, table: &TableId) -> Result<bool> {
    let published: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables \
             WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
            &[&publication, &table.schema, &table.table],
        )
        .await
        .map_err(SourceError::postgres(format!(
            "looking up publication {publication}"
        )))?
        .get(0);
    if published {
        return Ok(false);
    }
    let added = client
        .batch_execute(&format!(
            "ALTER PUBLICATION {} ADD TABLE {}",
            quote_ident(publication),
            quoted(table)
        ))
        .await;
    match added {
        Ok(()) => Ok(true),
        // Capture's publication refresh added it meanwhile (it keeps the probe published too).
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => Ok(false),
        Err(e) => Err(SourceError::postgres(format!(
            "adding {table} to publication {publication} (this needs the publication's owner)"
        ))(e)),
    }
}

/// Drops the publication if it exists.
pub async fn drop(client: &Client, publication: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {}",
            quote_ident(publication)
        ))
        .await
        .map_err(SourceError::postgres(format!(
            "dropping publication {publication}"
        )))
}
