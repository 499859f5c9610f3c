//! TLS to the source: `sslmode`, the CA and a client certificate, with libpq's meanings.
//!
//! | `sslmode`     | encrypted          | server certificate checked                       |
//! |---------------|--------------------|--------------------------------------------------|
//! | `disable`     | never              | no                                               |
//! | `prefer`      | if the server can  | no (falls back to plain if TLS is refused/fails) |
//! | `require`     | always             | chain only if a root certificate is given        |
//! | `verify-ca`   | always             | chain against the root certificate               |
//! | `verify-full` | always             | chain, and that it names the host                |
//!
//! As in libpq, the mode does not apply to a Unix socket (a host starting with `/`). Key
//! material is read only to build the TLS configuration and never printed; errors name files by
//! path.

use crate::error::{CoreError, Result};
use crate::tls_verify::{AcceptAnyServerCertificate, ChainOnly};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How much TLS a connection to the source demands (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS if the server offers it, else plain (also after a failed handshake); the certificate
    /// is not checked.
    #[default]
    Prefer,
    /// TLS always; the certificate chain is checked only if a root certificate is given.
    Require,
    /// TLS always; the certificate must be signed by the root certificate.
    VerifyCa,
    /// TLS always; the certificate must be signed by the root certificate and name the host.
    VerifyFull,
}

impl SslMode {
    /// The setting's value, as written in `PG2BQ_PG_SSLMODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS settings of the connections to the source.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// TLS to PostgreSQL, as libpq's sslmode (not used over a Unix socket).
    #[arg(
        global = true,
        long = "pg-sslmode",
        env = "PG2BQ_PG_SSLMODE",
        value_enum,
        default_value_t = SslMode::Prefer
    )]
    pub sslmode: SslMode,
    /// PEM file of the CA(s) that sign the server's certificate (needed by verify-ca and
    /// verify-full; with require it makes the chain checked).
    #[arg(global = true, long = "pg-sslrootcert", env = "PG2BQ_PG_SSLROOTCERT")]
    pub sslrootcert: Option<PathBuf>,
    /// PEM file of the client certificate (for `cert` authentication); needs --pg-sslkey.
    #[arg(global = true, long = "pg-sslcert", env = "PG2BQ_PG_SSLCERT")]
    pub sslcert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(global = true, long = "pg-sslkey", env = "PG2BQ_PG_SSLKEY")]
    pub sslkey: Option<PathBuf>,
}

/// What the server's certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: the connection is encrypted but the server is not authenticated.
    Nothing,
    /// Signed by the root certificate (`verify-ca`, or `require` with a root certificate).
    Chain,
    /// Signed by the root certificate and naming the host (`verify-full`).
    ChainAndHost,
}

/// What a connection does about TLS once the settings are applied to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPlan {
    /// A plain connection.
    Plain,
    /// A TLS connection.
    Tls {
        /// Whether a refusal or a failed handshake falls back to a plain connection (`prefer`).
        fallback_to_plain: bool,
        /// What the server's certificate is checked for.
        verify: Verify,
    },
}

impl TlsArgs {
    /// What connections to `host` do, after checking that the settings fit together.
    pub fn plan(&self, host: &str) -> Result<TlsPlan> {
        if self.sslcert.is_some() != self.sslkey.is_some() {
            return Err(CoreError::Config(
                "PG2BQ_PG_SSLCERT and PG2BQ_PG_SSLKEY go together: set both (the client certificate and its key) or neither".into(),
            ));
        }
        if host.starts_with('/') || self.sslmode == SslMode::Disable {
            return Ok(TlsPlan::Plain);
        }
        let verify = match self.sslmode {
            SslMode::Disable | SslMode::Prefer => Verify::Nothing,
            SslMode::Require if self.sslrootcert.is_none() => Verify::Nothing,
            SslMode::Require | SslMode::VerifyCa => Verify::Chain,
            SslMode::VerifyFull => Verify::ChainAndHost,
        };
        if verify != Verify::Nothing && self.sslrootcert.is_none() {
            return Err(CoreError::Config(format!(
                "PG2BQ_PG_SSLMODE={} checks the server's certificate against its CA: set PG2BQ_PG_SSLROOTCERT to the PEM file of the server's CA (or use PG2BQ_PG_SSLMODE=require to encrypt without checking)",
                self.sslmode.as_str()
            )));
        }
        Ok(TlsPlan::Tls {
            fallback_to_plain: self.sslmode == SslMode::Prefer,
            verify,
        })
    }

    /// The rustls configuration for TLS connections checking `verify`; reads the certificate
    /// and key files, and names the setting and the file of anything wrong.
    pub fn client_config(&self, verify: Verify) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match verify {
            Verify::Nothing => Arc::new(AcceptAnyServerCertificate::new(&provider)),
            Verify::Chain => Arc::new(ChainOnly::new(self.webpki_verifier(&provider)?)),
            Verify::ChainAndHost => self.webpki_verifier(&provider)?,
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CoreError::Config(format!("TLS protocol versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match self.client_identity()? {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                CoreError::Config(format!(
                    "PG2BQ_PG_SSLKEY does not fit PG2BQ_PG_SSLCERT ({}): {e}; set them to a certificate and its own key",
                    display(self.sslcert.as_deref())
                ))
            }),
            None => Ok(builder.with_no_client_auth()),
        }
    }

    fn webpki_verifier(&self, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>> {
        let path = self.sslrootcert.as_deref().ok_or_else(|| {
            CoreError::Config(
                "PG2BQ_PG_SSLROOTCERT is not set; set it to the PEM file of the server's CA".into(),
            )
        })?;
        let mut roots = RootCertStore::empty();
        let (added, _) =
            roots.add_parsable_certificates(read_certificates("PG2BQ_PG_SSLROOTCERT", path)?);
        if added == 0 {
            return Err(CoreError::Config(format!(
                "PG2BQ_PG_SSLROOTCERT ({}) holds no usable CA certificate; set it to the PEM file of the server's CA",
                path.display()
            )));
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .build()
            .map_err(|e| {
                CoreError::Config(format!("PG2BQ_PG_SSLROOTCERT ({}): {e}", path.display()))
            })
    }

    fn client_identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        let (Some(cert), Some(key)) = (self.sslcert.as_deref(), self.sslkey.as_deref()) else {
            return Ok(None);
        };
        let chain = read_certificates("PG2BQ_PG_SSLCERT", cert)?;
        if chain.is_empty() {
            return Err(CoreError::Config(format!(
                "PG2BQ_PG_SSLCERT ({}) holds no certificate; set it to the PEM file of the client certificate",
                cert.display()
            )));
        }
        // The key's bytes stay out of every message: only its path is named.
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            CoreError::Config(format!(
                "PG2BQ_PG_SSLKEY ({}): no usable private key ({}); set it to the PEM file of the client certificate's key (PKCS#8, PKCS#1 or SEC1, unencrypted)",
                key.display(),
                pem_problem(&e)
            ))
        })?;
        Ok(Some((chain, key)))
    }
}

fn read_certificates(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            CoreError::Config(format!(
                "{setting} ({}): cannot read certificates ({}); set it to a PEM file",
                path.display(),
                pem_problem(&e)
            ))
        })
}

/// A PEM error without any of the file's content.
fn pem_problem(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no PEM section of the expected kind".into(),
        Error::MissingSectionEnd { .. } | Error::IllegalSectionStart { .. } => {
            "malformed PEM".into()
        }
        Error::Base64Decode(_) => "malformed base64 in a PEM section".into(),
        _ => "unreadable PEM".into(),
    }
}

fn display(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: SslMode, root: Option<&str>) -> TlsArgs {
        TlsArgs {
            sslmode: mode,
            sslrootcert: root.map(PathBuf::from),
            ..TlsArgs::default()
        }
    }

    #[test]
    fn modes_follow_libpq() {
        let plan = |mode, root| args(mode, root).plan("db.internal").unwrap();
        assert_eq!(plan(SslMode::Disable, None), TlsPlan::Plain);
        assert_eq!(
            plan(SslMode::Prefer, Some("ca.pem")),
            TlsPlan::Tls {
                fallback_to_plain: true,
                verify: Verify::Nothing
            }
        );
        assert_eq!(
            plan(SslMode::Require, None),
            TlsPlan::Tls {
                fallback_to_plain: false,
                verify: Verify::Nothing
            }
        );
        // libpq: require with a root certificate behaves as verify-ca.
        assert_eq!(
            plan(SslMode::Require, Some("ca.pem")),
            TlsPlan::Tls {
                fallback_to_plain: false,
                verify: Verify::Chain
            }
        );
        assert_eq!(
            plan(SslMode::VerifyFull, Some("ca.pem")),
            TlsPlan::Tls {
                fallback_to_plain: false,
                verify: Verify::ChainAndHost
            }
        );
        // Not over a Unix socket.
        assert_eq!(
            args(SslMode::VerifyFull, None)
                .plan("/var/run/postgresql")
                .unwrap(),
            TlsPlan::Plain
        );
    }

    #[test]
    fn gaps_in_the_settings_name_the_fix() {
        let e = args(SslMode::VerifyCa, None).plan("db").unwrap_err();
        assert!(e.to_string().contains("set PG2BQ_PG_SSLROOTCERT"), "{e}");
        let half = TlsArgs {
            sslcert: Some("client.crt".into()),
            ..TlsArgs::default()
        };
        assert!(
            half.plan("db")
                .unwrap_err()
                .to_string()
                .contains("PG2BQ_PG_SSLKEY")
        );
        let missing = args(SslMode::VerifyFull, Some("/nonexistent/ca.pem"));
        let e = missing.client_config(Verify::ChainAndHost).unwrap_err();
        assert!(
            e.to_string()
                .contains("PG2BQ_PG_SSLROOTCERT (/nonexistent/ca.pem)"),
            "{e}"
        );
    }

    #[test]
    fn unverified_configs_need_no_files() {
        assert!(TlsArgs::default().client_config(Verify::Nothing).is_ok());
    }
}
