//! Certificates for tests, made with rcgen: a CA that issues server and
//! client certificates into PEM files. Shared by the `it` and `e2e` test
//! binaries.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A CA that signs certificates into files.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf certificate with `sans` (DNS names, IPs, or `uri:` URIs)
    /// and common name `cn`, written as `dir/NAME.pem` and `dir/NAME.key`.
    pub(crate) fn issue(
        &self,
        dir: &Path,
        name: &str,
        cn: &str,
        sans: &[&str],
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for san in sans {
            params
                .subject_alt_names
                .push(if let Some(uri) = san.strip_prefix("uri:") {
                    SanType::URI(uri.try_into().unwrap())
                } else if let Ok(ip) = san.parse::<IpAddr>() {
                    SanType::IpAddress(ip)
                } else {
                    SanType::DnsName((*san).try_into().unwrap())
                });
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    pub(crate) fn write(&self, path: &Path) {
        std::fs::write(path, &self.pem).unwrap();
    }
}
