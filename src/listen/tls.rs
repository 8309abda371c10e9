//! TLS for TCP listeners: rustls, TLS 1.3 and 1.2, ALPN h2, and a client
//! certificate signed by `--client-ca-file` required of every caller.
//! The certificate, its key and the CA are read again when their files
//! change (a mounted Secret rotates): new connections get the new ones,
//! open ones keep theirs. A caller's identities come from its certificate
//! (`identities`).
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The files a TLS listener is configured from (the kubelet's flag names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--tls-cert-file`: the server's certificate chain, PEM.
    pub cert: PathBuf,
    /// `--tls-private-key-file`: its key, PEM.
    pub key: PathBuf,
    /// `--client-ca-file`: the CAs client certificates must chain to, PEM.
    pub client_ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {path}: {source}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {path}: {what}")]
    Pem {
        flag: &'static str,
        path: PathBuf,
        what: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// How often the files are read again to see whether they changed.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The current server configuration, replaced when the files change.
#[derive(Clone)]
pub struct TlsServer {
    files: TlsFiles,
    current: Arc<RwLock<Loaded>>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    /// The files' contents the config was built from.
    contents: [Vec<u8>; 3],
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("files", &self.files)
            .finish()
    }
}

impl TlsServer {
    /// Reads the files and builds the configuration; any problem is an
    /// error naming the flag and the file.
    pub fn load(files: TlsFiles) -> Result<TlsServer, TlsError> {
        let contents = read_all(&files)?;
        let config = build(&files, &contents)?;
        Ok(TlsServer {
            files,
            current: Arc::new(RwLock::new(Loaded { config, contents })),
        })
    }

    /// An acceptor with the configuration of the moment.
    pub fn acceptor(&self) -> TlsAcceptor {
        let loaded = self.current.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(loaded.config.clone())
    }

    /// Reads the files again; when they changed and make a valid
    /// configuration, it replaces the current one. Ok(true) when replaced.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let contents = read_all(&self.files)?;
        {
            let loaded = self.current.read().unwrap_or_else(|p| p.into_inner());
            if loaded.contents == contents {
                return Ok(false);
            }
        }
        let config = build(&self.files, &contents)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Loaded { config, contents };
        Ok(true)
    }

    /// Follows the files until `shutdown`: a change is logged and taken;
    /// a file that does not make a valid configuration (half written, say)
    /// is logged and the last good configuration kept.
    pub async fn follow(self, every: Duration, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.reload() {
                Ok(true) => {
                    failing = false;
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate, key or client CA changed: new connections use them");
                }
                Ok(false) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "TLS files changed but cannot be used; keeping the previous ones");
                }
                Err(_) => {}
            }
        }
    }
}

fn read_all(files: &TlsFiles) -> Result<[Vec<u8>; 3], TlsError> {
    let read = |flag, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            flag,
            path: path.to_path_buf(),
            source,
        })
    };
    Ok([
        read("--tls-cert-file", &files.cert)?,
        read("--tls-private-key-file", &files.key)?,
        read("--client-ca-file", &files.client_ca)?,
    ])
}

fn build(files: &TlsFiles, [cert, key, ca]: &[Vec<u8>; 3]) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |flag, path: &Path, what: String| TlsError::Pem {
        flag,
        path: path.to_path_buf(),
        what,
    };
    let certs = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("--tls-cert-file", &files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem(
            "--tls-cert-file",
            &files.cert,
            "no certificate in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| pem("--tls-private-key-file", &files.key, e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        let c = c.map_err(|e| pem("--client-ca-file", &files.client_ca, e.to_string()))?;
        roots
            .add(c)
            .map_err(|e| pem("--client-ca-file", &files.client_ca, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(pem(
            "--client-ca-file",
            &files.client_ca,
            "no certificate in it".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} and {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The identities a client certificate names: its URI SANs as they are
/// (SPIFFE IDs), `dns:NAME` for each DNS SAN, `cn:NAME` for the subject's
/// common name. Empty for a certificate that cannot be read (the
/// handshake verified it, so this does not happen in practice).
pub fn identities(cert: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(cert) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(u) = name {
                out.push((*u).to_string());
            }
        }
        for name in &san.value.general_names {
            if let GeneralName::DNSName(d) = name {
                out.push(format!("dns:{d}"));
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            out.push(format!("cn:{cn}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
            client_ca: dir.join("ca.pem"),
        }
    }

    /// A self-signed certificate and its key, in PEM.
    fn self_signed(sans: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_string()).collect();
        let cert = rcgen::CertificateParams::new(sans)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn each_unusable_file_is_named_by_its_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        let err = TlsServer::load(f.clone()).unwrap_err().to_string();
        assert!(
            err.contains("--tls-cert-file") && err.contains("c.pem"),
            "{err}"
        );
        let (cert, key) = self_signed(&["localhost"]);
        std::fs::write(&f.cert, &cert).unwrap();
        std::fs::write(&f.key, &key).unwrap();
        std::fs::write(&f.client_ca, "not a certificate").unwrap();
        let err = TlsServer::load(f.clone()).unwrap_err().to_string();
        assert!(
            err.contains("--client-ca-file") && err.contains("no certificate"),
            "{err}"
        );
        std::fs::write(&f.client_ca, &cert).unwrap();
        std::fs::write(&f.key, "").unwrap();
        let err = TlsServer::load(f.clone()).unwrap_err().to_string();
        assert!(err.contains("--tls-private-key-file"), "{err}");
        // A key that is not the certificate's.
        std::fs::write(&f.key, self_signed(&["x"]).1).unwrap();
        assert!(TlsServer::load(f.clone()).is_err());
        std::fs::write(&f.key, &key).unwrap();
        let server = TlsServer::load(f.clone()).unwrap();
        assert!(
            !server.reload().unwrap(),
            "unchanged files are not reloaded"
        );
        // A half-written replacement keeps the last good configuration.
        std::fs::write(&f.cert, &cert[..cert.len() / 2]).unwrap();
        assert!(server.reload().is_err());
        let (cert2, key2) = self_signed(&["localhost"]);
        std::fs::write(&f.cert, cert2).unwrap();
        std::fs::write(&f.key, key2).unwrap();
        assert!(server.reload().unwrap(), "new files are taken");
    }

    #[test]
    fn identities_are_uri_sans_then_dns_sans_then_the_common_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        p.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/a/sa/b".try_into().unwrap(),
        ));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "orchestrator");
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(
            identities(cert.der()),
            vec![
                "spiffe://cluster.local/ns/a/sa/b".to_string(),
                "dns:a.example".to_string(),
                "cn:orchestrator".to_string()
            ]
        );
        assert!(identities(b"garbage").is_empty());
    }
}
