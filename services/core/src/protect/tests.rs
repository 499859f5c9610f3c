use super::*;

fn id(schema: &str, table: &str) -> TableId {
    TableId {
        schema: schema.into(),
        table: table.into(),
    }
}

fn column(name: &str, pg_type: &str, key: bool) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        pg_type: pg_type.into(),
        type_modifier: 7,
        key,
    }
}

const KEY: &str = "a key of at least sixteen bytes";

fn protection(text: &str) -> Protection {
    Protection::new(
        ProtectSetting::parse(text).unwrap(),
        Some(&Secret::from(KEY.to_owned())),
    )
    .unwrap()
}

#[test]
fn hmac_is_the_lowercase_hex_of_hmac_sha256() {
    // RFC 4231-style check with a known vector (key "key", the quick brown fox).
    let table = TableProtection {
        methods: vec![Some(Method::Hmac)],
        key: Some(Hmac::<Sha256>::new_from_slice(b"key").unwrap()),
    };
    assert_eq!(
        table
            .protect(0, b"The quick brown fox jumps over the lazy dog")
            .unwrap(),
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    assert_eq!(table.protect(1, b"x"), None);
}

#[test]
fn entries_pick_columns_by_table_pattern_first_entry_first() {
    let p =
        protection("public.users=email:hmac,phone:mask; public.u*=email:mask(x); *=ssn:mask(#)");
    let columns = [
        column("id", "int4", true),
        column("email", "text", false),
        column("phone", "text", false),
        column("ssn", "date", false),
    ];
    let users = p.table(&id("public", "users"), &columns).unwrap();
    assert_eq!(users.method(0), None);
    assert_eq!(users.method(1), Some(&Method::Hmac));
    assert_eq!(users.method(2), Some(&Method::Mask("****".into())));
    assert_eq!(users.method(3), Some(&Method::Mask("#".into())));
    let other = p.table(&id("sales", "users"), &columns).unwrap();
    assert_eq!(other.method(1), None);
    assert_eq!(other.method(3), Some(&Method::Mask("#".into())));
    assert!(p.table(&id("sales", "x"), &columns[..3]).is_none());
}

#[test]
fn rows_and_columns_are_protected_nulls_and_toast_kept() {
    let p = protection("public.t=d:hmac,n:mask");
    let mut columns = vec![
        column("id", "int4", true),
        column("d", "date", false),
        column("n", "numeric", false),
    ];
    let t = p.table(&id("public", "t"), &columns).unwrap();
    t.protect_columns(&mut columns);
    assert_eq!(columns[0].pg_type, "int4");
    assert_eq!(
        (columns[1].pg_type.as_str(), columns[1].type_modifier),
        ("text", -1)
    );
    assert_eq!(columns[2].pg_type, "text");
    let mut row = vec![
        Value::Text("1".into()),
        Value::Text("2024-01-02".into()),
        Value::Null,
    ];
    t.protect_row(&mut row);
    assert_eq!(row[0], Value::Text("1".into()));
    let Value::Text(hash) = &row[1] else {
        panic!("{row:?}")
    };
    assert_eq!(hash.len(), 64);
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(row[2], Value::Null);
    let mut row = vec![
        Value::Null,
        Value::UnchangedToast,
        Value::Text("1.5".into()),
    ];
    t.protect_row(&mut row);
    assert_eq!(row[1], Value::UnchangedToast);
    assert_eq!(row[2], Value::Text("****".into()));
    // Deterministic: the same text hashes the same.
    assert_eq!(t.protect(1, b"2024-01-02").unwrap(), *hash);
}

#[test]
fn a_hashing_setting_needs_a_long_key_and_never_shows_it() {
    let setting = ProtectSetting::parse("*=ssn:hmac").unwrap();
    let err = Protection::new(setting.clone(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PG2BQ_PROTECT_KEY"), "{err}");
    let short = Secret::from("short".to_owned());
    assert!(Protection::new(setting.clone(), Some(&short)).is_err());
    let p = Protection::new(setting, Some(&Secret::from(KEY.to_owned()))).unwrap();
    let shown = format!(
        "{p:?} {:?}",
        p.table(&id("a", "b"), &[column("ssn", "text", false)])
    );
    assert!(
        !shown.contains(KEY) && shown.contains("redacted"),
        "{shown}"
    );
    // Masks alone need no key.
    assert!(Protection::new(ProtectSetting::parse("*=a:mask").unwrap(), None).is_ok());
}

#[test]
fn a_column_named_for_one_table_must_exist() {
    let columns = [column("id", "int4", true), column("email", "text", false)];
    let p = protection("public.users=emial:hmac; public.u*=phone:mask; *=ssn:hmac");
    let err = p
        .check(&id("public", "users"), &columns)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no column emial") && err.contains("id, email"),
        "{err}"
    );
    // Patterns and `*` may name columns some tables lack.
    assert!(p.check(&id("public", "urls"), &columns).is_ok());
}

#[test]
fn key_columns_can_be_hashed_not_masked() {
    let columns = [column("id", "text", true)];
    assert!(
        protection("*=id:hmac")
            .check(&id("a", "b"), &columns)
            .is_ok()
    );
    let err = protection("*=id:mask")
        .check(&id("a", "b"), &columns)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key column") && err.contains("id:hmac"),
        "{err}"
    );
}

#[test]
fn bad_settings_are_refused() {
    for bad in [
        "users=email:hmac",
        "public.users",
        "public.users=email",
        "public.users=email:sha1",
        "public.users=:hmac",
        "public.users=",
        "public.users=email:mask(a",
    ] {
        assert!(ProtectSetting::parse(bad).is_err(), "{bad}");
    }
    assert!(ProtectSetting::parse(" ; ").unwrap().is_empty());
}

#[test]
fn tables_and_keys_are_described_without_the_key() {
    let p = protection("public.users=email:hmac, phone:mask ; *=ssn:mask(x)");
    let columns = [
        column("id", "int4", true),
        column("phone", "text", false),
        column("email", "text", false),
        column("ssn", "text", false),
    ];
    let check = p.key_check().expect("a hashing protection");
    assert_eq!(
        p.describe_table(&id("public", "users"), &columns),
        format!("phone:mask(****),email:hmac,ssn:mask(x) (key check {check})")
    );
    assert_eq!(p.describe_table(&id("public", "other"), &columns[..3]), "");
    assert_eq!(
        p.describe_table(&id("public", "other"), &columns),
        "ssn:mask(x)"
    );
    assert_eq!(check.len(), 16);
    assert!(!KEY.contains(&check));
    assert_eq!(Some(check.clone()), protection("*=a:hmac").key_check());
    let other_key = Protection::new(
        ProtectSetting::parse("*=a:hmac").unwrap(),
        Some(&Secret::from("another key of sixteen bytes".to_owned())),
    )
    .unwrap();
    assert_ne!(Some(check), other_key.key_check());
    assert_eq!(protection("*=a:mask").key_check(), None);
    assert_eq!(Protection::default().key_check(), None);
}
