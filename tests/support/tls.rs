//! A test certificate authority: a CA made by the test, and server
//! certificates it signs for 127.0.0.1, written where Sparta or nginx read
//! them. The go command trusts the CA through `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;

/// The CA and the current server certificate files.
pub struct TestCa {
    dir: TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM), for `SSL_CERT_FILE`.
    pub ca_pem: PathBuf,
    /// The server certificate chain (PEM).
    pub cert: PathBuf,
    /// The server key (PEM).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA and a first server certificate.
    pub fn new() -> TestCa {
        let dir = TempDir::new().expect("tempdir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sparta test ca");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, issuer.pem()).expect("write ca");
        let ca = TestCa {
            cert: dir.path().join("server.crt"),
            key: dir.path().join("server.key"),
            ca_pem,
            issuer,
            dir,
        };
        ca.issue("first");
        ca
    }

    /// Signs a new server certificate (CN `name`) and writes it over the
    /// current one; returns its DER.
    pub fn issue(&self, name: &str) -> Vec<u8> {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        // Key first, then the certificate, each by rename: a reader sees an
        // old or a new file, never half of one.
        write_atomic(&self.key, key.serialize_pem().as_bytes());
        write_atomic(&self.cert, cert.pem().as_bytes());
        cert.der().to_vec()
    }

    /// A directory for files beside the CA's.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An HTTP client that trusts this CA.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.issuer.pem().as_bytes()).expect("ca");
        reqwest::Client::builder()
            .add_root_certificate(ca)
            .tls_info(true)
            .timeout(crate::HTTP_TIMEOUT)
            .no_proxy()
            .build()
            .expect("client")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}
