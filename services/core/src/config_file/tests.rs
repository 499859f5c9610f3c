use super::*;
use clap::{Arg, Command};

const FILE: &str = r#"
[stream]
slot = "from_file"
state_schema = "file_state"
topic = "file-topic"
include = ["shop.*", "public.orders"]
"#;

fn command() -> Command {
    Command::new("t")
        .arg(
            Arg::new("slot")
                .long("slot")
                .env("PG2BQ_SLOT")
                .default_value("pg2bq"),
        )
        .arg(
            Arg::new("state_schema")
                .long("state-schema")
                .env("PG2BQ_STATE_SCHEMA")
                .default_value("pg2bq"),
        )
        .subcommand(
            Command::new("sub").arg(
                Arg::new("topic")
                    .long("topic")
                    .env("PG2BQ_TOPIC")
                    .required(true),
            ),
        )
}

/// The command as it parses without reading the process's environment (which may hold any
/// PG2BQ_* variable, e.g. after the demo's hints): only flags, the file and the defaults count.
fn ignoring_environment(command: Command) -> Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let mut command = command.mut_args(|arg| arg.env(None));
    for name in names {
        command = command.mut_subcommand(name, ignoring_environment);
    }
    command
}

fn value(matches: &clap::ArgMatches, id: &str) -> String {
    matches.get_one::<String>(id).cloned().unwrap_or_default()
}

#[test]
fn keys_stand_for_environment_variables() {
    let file = ConfigFile::parse(FILE).unwrap();
    assert_eq!(file.get("PG2BQ_SLOT"), Some("from_file"));
    assert_eq!(file.get("PG2BQ_TOPIC"), Some("file-topic"));
    assert_eq!(file.get("PG2BQ_INCLUDE"), Some("shop.*,public.orders"));
    assert_eq!(file.get("PG2BQ_PG_USER"), None);
    let numbers = ConfigFile::parse("[source]\nport = 6543\n").unwrap();
    assert_eq!(numbers.get("PG2BQ_PG_PORT"), Some("6543"));
}

#[test]
fn the_file_fills_defaults_and_required_values_of_subcommands() {
    let file = ConfigFile::parse(FILE).unwrap();
    let matches = ignoring_environment(file.apply_with(command(), &|_| false))
        .try_get_matches_from(["t", "sub"])
        .unwrap();
    assert_eq!(value(&matches, "slot"), "from_file");
    assert_eq!(value(&matches, "state_schema"), "file_state");
    let (_, sub) = matches.subcommand().unwrap();
    assert_eq!(value(sub, "topic"), "file-topic");
}

#[test]
fn flags_and_set_variables_win_over_the_file() {
    let file = ConfigFile::parse(FILE).unwrap();
    let matches =
        ignoring_environment(file.apply_with(command(), &|name| name == "PG2BQ_STATE_SCHEMA"))
            .try_get_matches_from(["t", "--slot", "from_flag", "sub"])
            .unwrap();
    assert_eq!(value(&matches, "slot"), "from_flag");
    // The variable is "set", so the file does not replace the built-in default (clap would then
    // read the variable itself).
    assert_eq!(value(&matches, "state_schema"), "pg2bq");
}

#[test]
fn passwords_are_refused_with_the_fix() {
    let error = ConfigFile::parse("[source]\npassword = \"hunter2\"\n").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("PG2BQ_PG_PASSWORD"), "{message}");
    assert!(message.contains("password_secret"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn protection_keys_are_refused_with_the_fix() {
    let error =
        ConfigFile::parse("[stream]\nprotect_key = \"0123456789abcdef0123\"\n").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("PG2BQ_PROTECT_KEY"), "{message}");
    assert!(message.contains("protect_key_secret"), "{message}");
    assert!(!message.contains("0123456789abcdef0123"), "{message}");
    let file = ConfigFile::parse(
        "[stream]\nprotect = \"public.users=email:hmac\"\nprotect_key_secret = \"projects/p/secrets/k\"\n",
    )
    .unwrap();
    assert_eq!(file.get("PG2BQ_PROTECT"), Some("public.users=email:hmac"));
}

#[test]
fn unknown_keys_and_sections_name_the_valid_ones() {
    let message = ConfigFile::parse("[source]\nhots = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("'hots'") && message.contains("host, port"),
        "{message}"
    );
    let message = ConfigFile::parse("[sink]\nx = 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("[sink]") && message.contains("[stream]"),
        "{message}"
    );
    let message = ConfigFile::parse("host = \"x\"\n").unwrap_err().to_string();
    assert!(message.contains("[host]"), "{message}");
}

#[test]
fn nested_values_are_refused() {
    let message = ConfigFile::parse("[stream]\ninclude = [[\"a\"]]\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("[stream] include"), "{message}");
}

#[test]
fn every_key_and_variable_appears_once() {
    for (i, a) in SETTINGS.iter().enumerate() {
        for b in &SETTINGS[i + 1..] {
            assert!(a.env != b.env, "{} twice", a.env);
            assert!(
                (a.section, a.key) != (b.section, b.key),
                "{}.{} twice",
                a.section,
                a.key
            );
        }
    }
}

#[test]
fn locate_prefers_the_flag() {
    let args: Vec<OsString> = ["pg2bq", "validate", "--config", "a.toml"]
        .iter()
        .map(OsString::from)
        .collect();
    assert_eq!(locate(&args), Some(PathBuf::from("a.toml")));
    let args: Vec<OsString> = ["pg2bq", "--config=b.toml"]
        .iter()
        .map(OsString::from)
        .collect();
    assert_eq!(locate(&args), Some(PathBuf::from("b.toml")));
}

#[test]
fn the_rename_list_reaches_the_layout_with_its_quoted_names() {
    use crate::wire::TableId;
    use clap::{CommandFactory, FromArgMatches};

    #[derive(Debug, clap::Parser)]
    struct Target {
        #[command(flatten)]
        target: crate::config::TargetArgs,
    }
    let file = ConfigFile::parse(
        "[target]\nrename = ['public.\"a,b.c\"=abc', 'public.t.\"Total, net\"=total_net']\n",
    )
    .unwrap();
    let matches = ignoring_environment(file.apply_with(Target::command(), &|_| false))
        .try_get_matches_from(["t"])
        .unwrap();
    let layout = Target::from_arg_matches(&matches)
        .unwrap()
        .target
        .layout()
        .unwrap();
    let id = |table: &str| TableId {
        schema: "public".into(),
        table: table.into(),
    };
    assert_eq!(layout.target(&id("a,b.c")).table, "abc");
    assert_eq!(layout.column(&id("t"), "Total, net"), "total_net");

    // The flag may be given more than once; a malformed entry stops the command.
    let matches = ignoring_environment(Target::command())
        .try_get_matches_from(["t", "--bq-rename", "s.a=x", "--bq-rename", "s.b=y"])
        .unwrap();
    let target = Target::from_arg_matches(&matches).unwrap().target;
    assert_eq!(target.layout().unwrap().renames().entries().len(), 2);
    let matches = ignoring_environment(Target::command())
        .try_get_matches_from(["t", "--bq-rename", "s.a"])
        .unwrap();
    let error = Target::from_arg_matches(&matches)
        .unwrap()
        .target
        .layout()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("PG2BQ_BQ_RENAME") && error.contains("malformed entry 's.a'"),
        "{error}"
    );
}
