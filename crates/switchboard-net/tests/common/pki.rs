//! Throwaway certificates for TLS tests: a CA, and a server certificate it
//! signs for `localhost` and `127.0.0.1`, as PEM files in a fresh directory
//! that is removed on drop. Nothing outlives the test that made them.
//!
//! Shared by the net crate's tests and the workspace's (through `#[path]`),
//! so that there is one way to make test certificates.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA and one server certificate, on disk.
pub struct Pki {
    /// The directory holding the files; removed on drop.
    pub dir: PathBuf,
    /// The CA certificate, PEM: what clients trust.
    pub ca: PathBuf,
    /// The server's certificate, PEM, signed by the CA.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8).
    pub key: PathBuf,
}

impl Pki {
    /// A new CA named `name` and a server certificate for `localhost` and
    /// `127.0.0.1`, in a new directory.
    pub fn new(name: &str) -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        pki.issue(name, &["localhost", "127.0.0.1"]);
        pki
    }

    /// Replaces the files with a new CA named `name` and a server
    /// certificate for `names`.
    pub fn issue(&self, name: &str, names: &[&str]) {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");

        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut server = CertificateParams::new(names).expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, format!("{name} server"));
        let cert = server
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("sign the server certificate");

        write(&self.ca, &ca_cert.pem());
        write(&self.cert, &cert.pem());
        write(&self.key, &key.serialize_pem());
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}
