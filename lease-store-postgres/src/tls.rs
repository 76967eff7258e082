//! TLS to PostgreSQL, as libpq does it: the URL's `sslmode` and
//! `sslrootcert` choose whether to encrypt and what to verify; rustls (with
//! the `ring` provider, the one the workspace's HTTP client already uses)
//! does the work.
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers TLS | no |
//! | `require` | yes | no (chain only if `sslrootcert` is given, as libpq) |
//! | `verify-ca` | yes | chain to the roots |
//! | `verify-full` | yes | chain, and the host name (or IP) of the URL |
//!
//! Roots: the PEM file `sslrootcert=PATH`; without it (or with
//! `sslrootcert=system`) the system's roots.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values that the store supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, unverified; plain otherwise.
    Prefer,
    /// TLS or nothing; the certificate is not checked (unless a root file
    /// is named: then as `VerifyCa`, like libpq).
    Require,
    /// TLS, the certificate chain checked against the roots.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling `value`, or why it is refused.
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{}` is not supported; use disable, prefer, require, verify-ca \
                     or verify-full",
                    other.escape_debug()
                ));
            }
        })
    }

    /// What the driver is told: whether TLS is asked for, and required.
    pub(crate) fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// Where the trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    /// The operating system's store (`rustls-native-certs`).
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

/// The TLS settings of a store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// The `sslmode` (default `prefer`).
    pub(crate) mode: SslMode,
    /// `sslrootcert`, if given.
    roots: Option<Roots>,
}

/// The URL without its `sslmode` and `sslrootcert` parameters (which the
/// driver does not know, or knows only in part), and those settings.
/// Other parameters are kept for the driver, in order.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let mut settings = TlsSettings {
        mode: SslMode::Prefer,
        roots: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), settings));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => settings.mode = SslMode::parse(&percent_decode(value)?)?,
            "sslrootcert" => settings.roots = Some(roots(&percent_decode(value)?)?),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(format!(
                    "`{key}` is not supported (no client certificates or CRLs); \
                     TLS takes sslmode and sslrootcert"
                ));
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, settings))
}

/// The roots named by an `sslrootcert` value.
fn roots(value: &str) -> Result<Roots, String> {
    match value {
        "" => Err("sslrootcert is empty; name a PEM file of CA certificates".to_owned()),
        "system" => Ok(Roots::System),
        path => Ok(Roots::File(PathBuf::from(path))),
    }
}

/// A URL query value with its `%XX` escapes decoded (`+` is kept, as
/// libpq does).
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let byte = bytes
                .get(at + 1..at + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("bad %-escape in `{}`", value.escape_debug()))?;
            out.push(byte);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{}` is not UTF-8", value.escape_debug()))
}

/// The connector for `settings`: a rustls client whose certificate
/// checks follow the mode. Fails if the roots cannot be read.
pub(crate) fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verify_chain = match settings.mode {
        SslMode::Disable | SslMode::Prefer => false,
        SslMode::Require => settings.roots.is_some(),
        SslMode::VerifyCa | SslMode::VerifyFull => true,
    };
    let chain = if verify_chain {
        let roots = load_roots(settings.roots.as_ref().unwrap_or(&Roots::System))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|error| format!("cannot use the TLS roots: {error}"))?;
        Some(webpki)
    } else {
        None
    };
    let verifier: Arc<dyn ServerCertVerifier> = match chain {
        Some(webpki) if settings.mode == SslMode::VerifyFull => webpki,
        chain => Arc::new(LaxVerifier {
            provider: provider.clone(),
            chain,
        }),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS set-up: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The trusted roots: a PEM file's certificates, or the system's.
fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|error| format!("cannot read sslrootcert `{shown}`: {error}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| format!("sslrootcert `{shown}` is not PEM: {error}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert `{shown}` holds no usable CA certificate"
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no system root certificates found for sslmode verify-ca/verify-full; \
                     name a CA file with sslrootcert=PATH"
                        .to_owned(),
                );
            }
        }
    }
    Ok(store)
}

/// The checks of `prefer`, `require` and `verify-ca` (`verify-full` is
/// rustls' own [`WebPkiServerVerifier`]): with `chain`, the certificate
/// must lead to a trusted root but may name another host; without, any
/// certificate is accepted (encryption without authentication, as
/// libpq). The handshake's signatures are checked either way.
#[derive(Debug)]
struct LaxVerifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for LaxVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name: a name error means the
        // chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_tls_parameters_off() {
        let (url, tls) = split_url(
            "postgres://a:p@db/x?application_name=y&sslmode=verify-full&sslrootcert=/etc/ca%20x.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://a:p@db/x?application_name=y");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.roots, Some(Roots::File("/etc/ca x.pem".into())));
        let (url, tls) = split_url("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://db/x", SslMode::Require)
        );
        let (url, tls) = split_url("postgres://db/x").unwrap();
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://db/x", SslMode::Prefer)
        );
        let (_, tls) = split_url("postgres://db/x?sslrootcert=system").unwrap();
        assert_eq!(tls.roots, Some(Roots::System));
    }

    #[test]
    fn refuses_bad_values() {
        for bad in [
            "postgres://db?sslmode=verify_full",
            "postgres://db?sslmode=",
            "postgres://db?sslmode=allow",
            "postgres://db?sslmode=REQUIRE",
            "postgres://db?sslmode=%zz",
            "postgres://db?sslmode=%ff",
            "postgres://db?sslrootcert=",
            "postgres://db?sslmode=require&sslcert=/c.pem",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
        let message = split_url("postgres://db?sslmode=\u{7}x").unwrap_err();
        assert!(message.contains("\\u{7}x"), "{message}");
    }

    #[test]
    fn driver_modes() {
        assert_eq!(SslMode::Disable.driver(), DriverSslMode::Disable);
        assert_eq!(SslMode::Prefer.driver(), DriverSslMode::Prefer);
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(mode.driver(), DriverSslMode::Require);
        }
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let (_, tls) =
            split_url("postgres://db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").unwrap();
        let message = connector(&tls).err().unwrap();
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    }

    #[test]
    fn a_root_file_without_certificates_is_a_clear_error() {
        let path = std::env::temp_dir().join(format!("not-a-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "hello, not a certificate\n").unwrap();
        let tls = TlsSettings {
            mode: SslMode::VerifyFull,
            roots: Some(Roots::File(path.clone())),
        };
        let message = connector(&tls).err().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(
            message.contains("holds no usable CA certificate"),
            "{message}"
        );
    }

    #[test]
    fn prefer_and_require_build_without_roots() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            let tls = TlsSettings { mode, roots: None };
            assert!(connector(&tls).is_ok(), "{mode:?}");
        }
    }
}
