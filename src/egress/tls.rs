//! TLS to a secret route's upstream (DESIGN.md §10): rustls with the ring
//! provider, verifying against the CA bundle the launcher read before the
//! proxy confined itself (the system's, or `SSL_CERT_FILE`'s). The proxy
//! opens no file, so the roots are built once from those bytes.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A client configuration trusting the certificates in `pem` (a bundle of
/// `CERTIFICATE` blocks; other blocks and unparsable certificates are
/// skipped, as OpenSSL does).
///
/// # Errors
/// No usable certificate in the bundle, or rustls refusing the provider.
pub fn client_config(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    let (added, _skipped) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("the CA bundle holds no usable certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The route speaks HTTP/1.1 upstream.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bundle_without_certificates_is_refused() {
        assert!(super::client_config(b"").is_err());
        assert!(super::client_config(
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }
}
