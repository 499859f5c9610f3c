//! Throwaway certificates for TLS tests, made with the `openssl` command: a CA, a server
//! certificate for `localhost` signed by it, a client certificate, and an unrelated CA.

use crate::scratch_dir::{ScratchDir, reap_stale};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The certificates and keys (PEM files), removed when dropped.
#[derive(Debug)]
pub struct TestCerts {
    dir: ScratchDir,
    /// The CA that signs the server's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signs nothing here (a wrong `sslrootcert`).
    pub other_ca: PathBuf,
    /// The server's certificate; its only name is `DNS:localhost`.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// The client's certificate, with the user name as its CN.
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
}

impl TestCerts {
    /// Makes a CA, a server certificate for `localhost` and a client certificate for
    /// `client_user`. Panics naming `openssl` and how to install it if it is missing.
    pub fn generate(client_user: &str) -> Self {
        require_openssl();
        reap_stale("certs", |_| {});
        let dir = ScratchDir::new("certs");
        let path = |name: &str| dir.path().join(name);
        self_signed_ca(dir.path(), "ca", "pg2bq test CA");
        self_signed_ca(dir.path(), "other-ca", "pg2bq unrelated CA");
        signed(
            dir.path(),
            "server",
            "localhost",
            "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
            2,
        );
        signed(
            dir.path(),
            "client",
            client_user,
            "extendedKeyUsage=clientAuth\n",
            3,
        );
        TestCerts {
            ca: path("ca.crt"),
            other_ca: path("other-ca.crt"),
            server_cert: path("server.crt"),
            server_key: path("server.key"),
            client_cert: path("client.crt"),
            client_key: path("client.key"),
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn require_openssl() {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the `openssl` command is missing: the TLS tests make their certificates with it. Install it with `apt-get install openssl` (Debian/Ubuntu)"
    );
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn self_signed_ca(dir: &Path, name: &str, common_name: &str) {
    openssl(
        dir,
        &[
            &["req", "-x509", "-new", "-nodes", "-days", "2"][..],
            &EC_KEY,
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-subj",
                &format!("/CN={common_name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
}

fn signed(dir: &Path, name: &str, common_name: &str, extensions: &str, serial: u32) {
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}"
        ),
    )
    .expect("extensions file");
    openssl(
        dir,
        &[
            &["req", "-new", "-nodes"][..],
            &EC_KEY,
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={common_name}"),
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {} failed:\n{}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
}
