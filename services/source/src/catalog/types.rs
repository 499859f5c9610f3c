//! Canonical type names of columns: builtin types by OID, domains followed to their base type,
//! arrays to their element type (`int4[]`), enums as `enum`, other user types by name.

use crate::error::{Result, SourceError};
use pg2bq_core::pg_types::builtin_type_name;
use std::collections::HashMap;
use tokio_postgres::Client;

/// A column type as pg2bq maps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedType {
    /// Canonical name: `int4`, `numeric`, `text[]`, `enum`, `enum[]`, or a user type's name.
    pub name: String,
    /// The type modifier a domain gives its base type (-1 if none).
    pub type_modifier: i32,
}

/// Resolves type OIDs, remembering what it resolved.
#[derive(Debug, Default)]
pub struct TypeResolver {
    resolved: HashMap<u32, ResolvedType>,
}

impl TypeResolver {
    /// The canonical type of `type_oid`.
    pub async fn resolve(&mut self, client: &Client, type_oid: u32) -> Result<ResolvedType> {
        if let Some(name) = builtin_type_name(type_oid) {
            return Ok(named(name, 0, -1));
        }
        if let Some(resolved) = self.resolved.get(&type_oid) {
            return Ok(resolved.clone());
        }
        let resolved = resolve_from_catalog(client, type_oid).await?;
        self.resolved.insert(type_oid, resolved.clone());
        Ok(resolved)
    }
}

/// Follows domains to their base type and arrays to their element type.
async fn resolve_from_catalog(client: &Client, type_oid: u32) -> Result<ResolvedType> {
    let mut oid = type_oid;
    let mut type_modifier = -1;
    let mut array_depth = 0;
    loop {
        if let Some(name) = builtin_type_name(oid) {
            return Ok(named(name, array_depth, type_modifier));
        }
        let row = client
            .query_opt(
                "SELECT typtype::text, typname::text, typbasetype, typelem, typcategory::text, typtypmod \
                 FROM pg_catalog.pg_type WHERE oid = $1",
                &[&oid],
            )
            .await
            .map_err(SourceError::postgres(format!("looking up type {oid}")))?
            .ok_or_else(|| SourceError::Catalog(format!("type {oid} is not in pg_type")))?;
        let typtype: String = row.get(0);
        let typname: String = row.get(1);
        let category: String = row.get(4);
        match (typtype.as_str(), category.as_str()) {
            ("d", _) => {
                let domain_modifier: i32 = row.get(5);
                if type_modifier < 0 {
                    type_modifier = domain_modifier;
                }
                oid = row.get(2);
            }
            (_, "A") => {
                array_depth += 1;
                oid = row.get(3);
            }
            ("e", _) => return Ok(named("enum", array_depth, type_modifier)),
            _ => return Ok(named(&typname, array_depth, type_modifier)),
        }
    }
}

fn named(name: &str, array_depth: usize, type_modifier: i32) -> ResolvedType {
    ResolvedType {
        name: format!("{name}{}", "[]".repeat(array_depth)),
        type_modifier,
    }
}
