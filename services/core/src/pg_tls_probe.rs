//! The names in the source server's certificate, read in a TLS handshake that checks the
//! certificate's chain.
//!
//! The replication client (pgwire-replication 0.5) checks the host name even in `verify-ca`:
//! it ignores only rustls' older name error, not the one rustls reports now. So for `verify-ca`
//! capture first reads a name the certificate does list and gives it to the client as the
//! server name to check, which then checks the chain and that name: `verify-ca` as libpq means
//! it.

use crate::config::SourceArgs;
use crate::connect_error::{connect_error, with_causes};
use crate::error::{CoreError, Result};
use crate::pg_tls::Verify;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

/// A server name for the replication client to check in `verify-ca`: the host itself if the
/// certificate lists it, else the first name it lists. `None` if the server refuses TLS (the
/// connection itself then reports that).
pub async fn name_to_check(source: &SourceArgs) -> Result<Option<String>> {
    let names = match certificate_names(source).await? {
        Some(names) => names,
        None => return Ok(None),
    };
    if names.iter().any(|n| n.eq_ignore_ascii_case(&source.host)) {
        return Ok(Some(source.host.clone()));
    }
    names.into_iter().next().map(Some).ok_or_else(|| {
        CoreError::Config(format!(
            "the server's certificate lists no DNS or IP name (subjectAltName), which the replication connection needs even with PG2BQ_PG_SSLMODE=verify-ca; reissue the certificate with one, or set PG2BQ_PG_SSLMODE=require with PG2BQ_PG_SSLROOTCERT unset (encrypted, not verified) [{}]",
            source.describe()
        ))
    })
}

/// The DNS and IP names of the server's certificate, after checking its chain; `None` if the
/// server refuses TLS.
async fn certificate_names(source: &SourceArgs) -> Result<Option<Vec<String>>> {
    let failed = |problem: String| connect_error(source, "replication", problem);
    let config = source.tls.client_config(Verify::Chain)?;
    let mut tcp = TcpStream::connect((source.host.as_str(), source.port))
        .await
        .map_err(|e| failed(with_causes(&e)))?;
    let mut answer = [0u8; 1];
    tcp.write_all(&SSL_REQUEST)
        .await
        .map_err(|e| failed(with_causes(&e)))?;
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| failed(with_causes(&e)))?;
    if answer[0] != b'S' {
        return Ok(None);
    }
    let server_name = ServerName::try_from(source.host.clone())
        .map_err(|e| CoreError::Config(format!("PG2BQ_PG_HOST {:?}: {e}", source.host)))?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| failed(format!("TLS handshake failed: {}", with_causes(&e))))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| der.as_ref().to_vec());
    let _ = tls.shutdown().await;
    let leaf = leaf.ok_or_else(|| failed("the server sent no certificate".into()))?;
    Ok(Some(subject_alt_names(&leaf)))
}

/// DNS names first, then IP addresses, as written in the certificate.
fn subject_alt_names(der: &[u8]) -> Vec<String> {
    let Ok(certificate) = Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some((_, SubjectAltName(names)))) = certificate.tbs_certificate.get::<SubjectAltName>()
    else {
        return Vec::new();
    };
    // A wildcard stands for any one label: any such name is one the certificate lists.
    let dns = names.iter().filter_map(|n| match n {
        GeneralName::DnsName(name) => Some(name.as_str().replacen('*', "pg2bq", 1)),
        _ => None,
    });
    let ips = names.iter().filter_map(|n| match n {
        GeneralName::IpAddress(octets) => ip_text(octets.as_bytes()),
        _ => None,
    });
    dns.chain(ips).collect()
}

fn ip_text(octets: &[u8]) -> Option<String> {
    let ip = match octets.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(octets).ok()?),
        16 => std::net::IpAddr::from(<[u8; 16]>::try_from(octets).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_read_as_text() {
        assert_eq!(super::ip_text(&[10, 0, 0, 5]).as_deref(), Some("10.0.0.5"));
        assert_eq!(super::ip_text(&[1, 2, 3]), None);
        assert!(super::subject_alt_names(b"not a certificate").is_empty());
    }
}
