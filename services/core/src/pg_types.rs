//! The PostgreSQL type catalogue: canonical names of built-in types by OID.
//!
//! Capture names every column's type in the wire format. Built-in types are known here by OID;
//! user-defined types (domains, enums, arrays of them, composites, ranges) are resolved by capture
//! from the catalogue: a domain is named by its base type, an enum as `enum`, and an array as its
//! element type followed by `[]`. Anything else keeps its own name and travels as text.

/// Canonical name of a built-in PostgreSQL type, or `None` for a user-defined type.
pub fn builtin_type_name(oid: u32) -> Option<&'static str> {
    let name = match oid {
        16 => "bool",
        17 => "bytea",
        18 => "char",
        19 => "name",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        25 => "text",
        26 => "oid",
        114 => "json",
        142 => "xml",
        650 => "cidr",
        700 => "float4",
        701 => "float8",
        774 => "macaddr8",
        790 => "money",
        829 => "macaddr",
        869 => "inet",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1266 => "timetz",
        1560 => "bit",
        1562 => "varbit",
        1700 => "numeric",
        2950 => "uuid",
        3614 => "tsvector",
        3802 => "jsonb",
        // Arrays of the above.
        1000 => "bool[]",
        1001 => "bytea[]",
        1002 => "char[]",
        1003 => "name[]",
        1005 => "int2[]",
        1007 => "int4[]",
        1009 => "text[]",
        1014 => "bpchar[]",
        1015 => "varchar[]",
        1016 => "int8[]",
        1021 => "float4[]",
        1022 => "float8[]",
        1028 => "oid[]",
        1115 => "timestamp[]",
        1182 => "date[]",
        1183 => "time[]",
        1185 => "timestamptz[]",
        1187 => "interval[]",
        1231 => "numeric[]",
        1270 => "timetz[]",
        143 => "xml[]",
        199 => "json[]",
        651 => "cidr[]",
        791 => "money[]",
        1041 => "inet[]",
        2951 => "uuid[]",
        3807 => "jsonb[]",
        _ => return None,
    };
    Some(name)
}

/// Precision and scale of a `numeric(p,s)` type modifier, or `None` for unconstrained numeric.
pub fn numeric_precision_scale(type_modifier: i32) -> Option<(u32, u32)> {
    if type_modifier < 4 {
        return None;
    }
    let packed = (type_modifier - 4) as u32;
    Some((packed >> 16, packed & 0xFFFF))
}

/// Session settings under which every pg2bq connection reads values, so that text forms are
/// the same in the replication stream, in a backfill and in validation whatever the database,
/// role or server defaults say. Each is set in the startup packet, where it overrides
/// `ALTER DATABASE ... SET`, `ALTER ROLE ... SET` and `postgresql.conf`; all of them are
/// settings any user may change (`lc_messages`, which is not, is left alone).
///
/// Text forms:
/// - `TimeZone`, `DateStyle`, `IntervalStyle`: UTC instants, ISO dates, ISO 8601 intervals;
/// - `extra_float_digits`: floats printed exactly (shortest round-trip form);
/// - `bytea_output`: `\x` hex, the form the writer decodes (`escape` would print most bytes as
///   themselves and octal escapes);
/// - `lc_monetary`: `C`, so that money prints as `-$1,234.56`: its stored integer in hundredths.
///   That is the amount for every locale whose currency has two fraction digits (the euro, the
///   dollar, ...); `pg2bq profile test source` fails, with the fix, for a database whose
///   `lc_monetary` has another number and whose selected tables have money columns.
///
/// What a session may do:
/// - `row_security`: `off`, so that row-level security never hides rows: a query it would
///   filter fails instead (the backfill refuses such a table with the fix, BYPASSRLS);
/// - `statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout`,
///   `idle_session_timeout`: off. A backfill's COPY runs as long as its range takes, its
///   transaction waits idle for Pub/Sub's acknowledgements, the session exporting a backfill
///   snapshot sits idle in its transaction for a whole table, and the catalogue connection of
///   capture may idle for hours: a default meant for applications would end them all;
/// - `default_transaction_isolation`: `read committed`, what pg2bq's statements are written
///   for (a backfill's transactions set their own);
/// - `standard_conforming_strings`: `on`, so that a backslash in a literal is itself.
///
/// Notices (such as "relation already exists, skipping" of the idempotent set-up statements)
/// are not sent: only warnings and errors.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
    ("row_security", "off"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
    ("idle_session_timeout", "0"),
    ("default_transaction_isolation", "read committed"),
    ("standard_conforming_strings", "on"),
    ("client_min_messages", "warning"),
];

/// Settings of newer servers than the oldest pg2bq supports, set after connecting when the
/// server knows them (a startup packet naming an unknown setting is refused).
/// `transaction_timeout` (PostgreSQL 17) would end a backfill's transaction like the timeouts
/// of [`SESSION_SETTINGS`].
pub const NEWER_SESSION_SETTINGS: &[(&str, &str)] = &[("transaction_timeout", "0")];

/// Run on every connection that reads values, once it is open. A database encoded `SQL_ASCII`
/// stores text as whatever bytes it was given, and the server refuses to send bytes that are
/// not UTF-8 to a client whose `client_encoding` is UTF8 (every driver's, set in the startup
/// packet after `options`): the replication stream and a backfill's COPY would stop at the
/// first such value, again at every retry. On such a database the session takes `client_encoding` `SQL_ASCII`,
/// under which the bytes arrive as stored: valid UTF-8 as text, the rest as
/// `{"invalid_utf8": ...}`, which the writer quarantines with the fix. A database in any other
/// encoding keeps UTF8, into which the server converts its text.
pub const CLIENT_ENCODING_STATEMENT: &str = "SELECT pg_catalog.set_config('client_encoding', \
     'SQL_ASCII', false) WHERE pg_catalog.current_setting('server_encoding') = 'SQL_ASCII'";

/// [`SESSION_SETTINGS`] as a startup `options` string (`-c name=value ...`).
pub fn session_options() -> String {
    SESSION_SETTINGS
        .iter()
        .map(|(name, value)| format!("-c {name}={}", value.replace(' ', "\\ ")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_common_types_and_arrays() {
        assert_eq!(builtin_type_name(23), Some("int4"));
        assert_eq!(builtin_type_name(1184), Some("timestamptz"));
        assert_eq!(builtin_type_name(1007), Some("int4[]"));
        assert_eq!(builtin_type_name(16_384), None);
    }

    #[test]
    fn session_options_escape_spaces_and_name_every_setting() {
        let options = session_options();
        assert!(options.starts_with("-c TimeZone=UTC -c DateStyle=ISO,\\ YMD "));
        assert!(options.contains("-c default_transaction_isolation=read\\ committed"));
        assert_eq!(options.matches("-c ").count(), SESSION_SETTINGS.len());
        assert!(options.contains("-c lc_monetary=C") && options.contains("-c bytea_output=hex"));
    }

    #[test]
    fn decodes_numeric_modifiers() {
        // numeric(10,2): ((10 << 16) | 2) + 4
        assert_eq!(numeric_precision_scale((10 << 16 | 2) + 4), Some((10, 2)));
        assert_eq!(numeric_precision_scale(-1), None);
    }
}
