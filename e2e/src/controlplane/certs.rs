//! The control plane's PKI: a CA, the API server's serving certificate, an admin client
//! certificate and the service-account signing key, written as PEM files.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Addresses and names the API server's certificate covers.
pub const SERVING_IPS: [&str; 4] = ["127.0.0.1", "::1", "198.18.0.1", "198.19.0.1"];
const SERVING_NAMES: [&str; 4] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
];

/// Writes `ca.crt`, `apiserver.crt/.key`, `admin.crt/.key`, `sa.key`, `sa.pub` into `dir`, and a
/// client certificate `<file>.crt/.key` for each of `clients` (file, user, group): the identities
/// of real nodes' kubelets (`system:node:<name>` in `system:nodes`), kube-proxy and the scheduler.
pub fn write_pki(dir: &Path, clients: &[(String, String, Option<String>)]) -> anyhow::Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn("ferrolb-e2e-ca", None);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())?;

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(SERVING_NAMES.map(String::from).to_vec())?;
    for ip in SERVING_IPS {
        serving
            .subject_alt_names
            .push(SanType::IpAddress(ip.parse::<IpAddr>()?));
    }
    serving.distinguished_name = dn("kube-apiserver", None);
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;
    std::fs::write(dir.join("apiserver.crt"), serving_cert.pem())?;
    std::fs::write(dir.join("apiserver.key"), serving_key.serialize_pem())?;

    let admin = ("admin".to_string(), "ferrolb-e2e-admin".to_string());
    let admin = (admin.0, admin.1, Some("system:masters".to_string()));
    for (file, user, group) in std::iter::once(&admin).chain(clients) {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(user, group.as_deref());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem())?;
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem())?;
    }

    let sa_key = KeyPair::generate()?;
    std::fs::write(dir.join("sa.key"), sa_key.serialize_pem())?;
    std::fs::write(dir.join("sa.pub"), sa_key.public_key_pem())?;
    Ok(())
}

fn dn(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}
