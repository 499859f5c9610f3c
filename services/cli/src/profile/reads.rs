//! Checks of what the backfill and the stream read: row-level security that would hide rows
//! from capture's user, and money columns under a database `lc_monetary` that pg2bq's pinned
//! `lc_monetary = C` would misread.

use super::{Check, Outcome, check};
use crate::error::{CliError, Result};
use pg2bq_source::catalog::SourceTable;
use tokio_postgres::Client;

/// Tables whose rows row-level security would hide from the user: the backfill refuses them
/// (it never copies a subset), so they fail with the fix.
pub async fn row_security_checks(sql: &Client, tables: &[SourceTable]) -> Result<Vec<Check>> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = sql
        .query(
            "SELECT c.oid, current_user::text FROM pg_catalog.pg_class c \
             WHERE c.oid = ANY($1) AND pg_catalog.row_security_active(c.oid)",
            &[&oids],
        )
        .await
        .map_err(CliError::postgres("checking row-level security"))?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let (oid, user): (u32, String) = (row.get(0), row.get(1));
            let table = tables.iter().find(|t| t.oid == oid)?;
            Some(row_security_check(&table.id.to_string(), &user))
        })
        .collect())
}

fn row_security_check(table: &str, user: &str) -> Check {
    check(
        table,
        Outcome::Fail,
        format!(
            "row-level security would hide rows from {user}: the backfill refuses to copy a \
             subset, so the table is not copied"
        ),
        Some(format!(
            "ALTER ROLE \"{}\" BYPASSRLS; (as a superuser), or run capture as the table's owner \
             (when the table does not FORCE ROW LEVEL SECURITY)",
            user.replace('"', "\"\"")
        )),
    )
}

/// Columns of type money (or arrays of it), as `schema.table.column`.
fn money_columns(tables: &[SourceTable]) -> Vec<String> {
    tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.spec.pg_type.trim_end_matches("[]") == "money")
                .map(move |c| format!("{}.{}", t.id, c.spec.name))
        })
        .collect()
}

/// pg2bq reads money with `lc_monetary = C`, which prints its stored integer in hundredths:
/// the amount for the database's own `lc_monetary` only if that has two fraction digits too.
/// `lc_monetary` and `fraction_digits` are what a session with the database's defaults sees
/// (`None` when such a session could not be opened).
pub fn money_check(columns: &[String], lc_monetary: Option<(&str, i32)>) -> Option<Check> {
    if columns.is_empty() {
        return None;
    }
    let list = columns.join(", ");
    Some(match lc_monetary {
        None => check(
            "lc_monetary",
            Outcome::Warn,
            format!("money columns {list}: the database's lc_monetary could not be read"),
            Some("run `SHOW lc_monetary; SELECT scale(0::money::numeric);` in an application's session: pg2bq is exact when the scale is 2".into()),
        ),
        Some((locale, 2)) => check(
            "lc_monetary",
            Outcome::Pass,
            format!(
                "money columns ({list}) are read with lc_monetary C, two fraction digits as the \
                 database's {locale}: exact"
            ),
            None,
        ),
        Some((locale, digits)) => check(
            "lc_monetary",
            Outcome::Fail,
            format!(
                "the database's lc_monetary {locale} gives money {digits} fraction digits, but \
                 pg2bq reads money with lc_monetary C (two): the amounts of {list} would be \
                 scaled by 10^{}",
                digits - 2
            ),
            Some(format!(
                "make the columns numeric, in a session with lc_monetary {locale} so that the \
                 amounts keep their value: ALTER TABLE <table> ALTER COLUMN <column> TYPE \
                 numeric(20, {digits}) USING <column>::numeric;"
            )),
        ),
    })
}

/// [`money_check`] for the selected tables: reads the database's `lc_monetary` over a session
/// without pg2bq's settings.
pub async fn money_checks(
    source: &pg2bq_core::config::SourceArgs,
    tables: &[SourceTable],
) -> Vec<Check> {
    let columns = money_columns(tables);
    if columns.is_empty() {
        return Vec::new();
    }
    let defaults = async {
        let sql = pg2bq_core::pg_connect::connect_sql_with_database_defaults(
            source,
            "pg2bq-profile-test",
        )
        .await
        .ok()?;
        let row = sql
            .query_one(
                "SELECT current_setting('lc_monetary'), pg_catalog.scale(0::money::numeric)",
                &[],
            )
            .await
            .ok()?;
        Some((row.get::<_, String>(0), row.get::<_, i32>(1)))
    }
    .await;
    money_check(
        &columns,
        defaults
            .as_ref()
            .map(|(locale, digits)| (locale.as_str(), *digits)),
    )
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_fails_under_a_locale_without_two_fraction_digits() {
        let columns = vec!["shop.orders.total".to_owned()];
        assert!(money_check(&[], Some(("ja_JP.UTF-8", 0))).is_none());
        let german = money_check(&columns, Some(("de_DE.UTF-8", 2))).unwrap();
        assert_eq!(german.outcome, Outcome::Pass, "{}", german.detail);
        let yen = money_check(&columns, Some(("ja_JP.UTF-8", 0))).unwrap();
        assert_eq!(yen.outcome, Outcome::Fail);
        assert!(
            yen.detail
                .contains("ja_JP.UTF-8 gives money 0 fraction digits")
                && yen.detail.contains("shop.orders.total")
                && yen.detail.contains("10^-2"),
            "{}",
            yen.detail
        );
        assert!(
            yen.fix
                .unwrap()
                .contains("TYPE numeric(20, 0) USING <column>::numeric")
        );
        assert_eq!(money_check(&columns, None).unwrap().outcome, Outcome::Warn);
        let rls = row_security_check("s.t", "cap\"ture");
        assert_eq!(rls.outcome, Outcome::Fail);
        assert!(
            rls.fix
                .unwrap()
                .starts_with("ALTER ROLE \"cap\"\"ture\" BYPASSRLS;")
        );
    }
}
