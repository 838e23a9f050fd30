//! rustls client settings for PostgreSQL's `sslmode` and `rediss://`, with the bundled roots.
//! libpq's `prefer` and `require` encrypt without verifying the certificate; `verify-ca` checks
//! the chain only; `verify-full` checks chain and host name.

use std::sync::{Arc, Mutex};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::WebPkiServerVerifier,
    crypto::{
        ring, verify_tls12_signature, verify_tls13_signature, ActiveKeyExchange, CryptoProvider,
        SupportedKxGroup,
    },
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    CertificateError, ClientConfig, DigitallySignedStruct, Error, NamedGroup, RootCertStore,
    SignatureScheme,
};

use super::sql::dsn::SslMode;

/// How much of the server's certificate to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

impl Verify {
    /// As libpq: `require` with a CA file given behaves as `verify-ca`.
    pub fn of(mode: SslMode, ca_file: Option<&str>) -> Verify {
        match mode {
            SslMode::VerifyFull => Verify::ChainAndName,
            SslMode::VerifyCa => Verify::Chain,
            SslMode::Require if ca_file.is_some() => Verify::Chain,
            _ => Verify::Nothing,
        }
    }
}

/// The key-exchange group whose key share the ClientHello carries. A server that wants another
/// one answers with a HelloRetryRequest: one more round trip and a second key pair on every
/// connection. PostgreSQL before 18 accepts only P-256 (`ssl_ecdh_curve` defaults to
/// `prime256v1`), and PostgreSQL 18 accepts it too; other servers take rustls's X25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyShare {
    X25519,
    P256,
}

/// The client configuration, or the reason it cannot be built (an unreadable CA file): the
/// script's fault, reported before any connection is made.
pub fn client_config(
    verify: Verify,
    ca_file: Option<&str>,
    key_share: KeyShare,
) -> Result<ClientConfig, String> {
    client_config_with(verify, ca_file, key_share, None)
}

/// A client certificate and its key, read from PEM files (`cert_file`, `key_file`).
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: String,
    key_file: String,
}

/// Read a client certificate (chain) and its key; an error names the file (a script fault).
pub fn identity(cert_file: &str, key_file: &str) -> Result<Identity, String> {
    let chain = pem_certificates(cert_file, "certificate file")?;
    let bytes = std::fs::read(key_file).map_err(|e| {
        format!(
            "cannot read the key file {key_file}: {}",
            super::io_reason(&e)
        )
    })?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!("the key file {key_file} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")
    })?;
    Ok(Identity {
        chain,
        key,
        cert_file: cert_file.into(),
        key_file: key_file.into(),
    })
}

/// The client's side of the handshake: its certificate when one is given.
fn authenticate(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    identity: Option<&Identity>,
) -> Result<ClientConfig, String> {
    let Some(id) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    builder
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| match e {
            Error::InconsistentKeys(_) => format!(
                "the key in {} does not match the certificate in {}",
                id.key_file, id.cert_file
            ),
            e => format!(
                "the client certificate {} with the key {}: {e}",
                id.cert_file, id.key_file
            ),
        })
}

/// As [`client_config`], presenting `identity` to a server that asks for a certificate.
pub fn client_config_with(
    verify: Verify,
    ca_file: Option<&str>,
    key_share: KeyShare,
    identity: Option<&Identity>,
) -> Result<ClientConfig, String> {
    let mut provider = ring::default_provider();
    if key_share == KeyShare::P256 {
        // Stable sort: P-256 first, the others in rustls's order after it.
        provider
            .kx_groups
            .sort_by_key(|g| g.name() != NamedGroup::secp256r1);
        if let Some(p256) = provider
            .kx_groups
            .iter_mut()
            .find(|g| g.name() == NamedGroup::secp256r1)
        {
            *p256 = &EARLY_P256;
        }
    }
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match verify {
        Verify::Nothing => authenticate(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
            identity,
        )?,
        Verify::Chain | Verify::ChainAndName => {
            let roots = Arc::new(roots(ca_file)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
            if verify == Verify::ChainAndName {
                authenticate(builder.with_webpki_verifier(webpki), identity)?
            } else {
                authenticate(
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))),
                    identity,
                )?
            }
        }
    };
    Ok(config)
}

/// P-256 with a key pair that may have been made ahead of time by [`prepare_p256_key_share`].
static EARLY_P256: EarlyP256 = EarlyP256 {
    ready: Mutex::new(None),
};

struct EarlyP256 {
    ready: Mutex<Option<Box<dyn ActiveKeyExchange>>>,
}

impl std::fmt::Debug for EarlyP256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EarlyP256")
    }
}

impl SupportedKxGroup for EarlyP256 {
    /// The key pair made ahead of time if there is one (taken: each is used once), else a new one.
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let early = self.ready.lock().ok().and_then(|mut ready| ready.take());
        match early {
            Some(kx) => Ok(kx),
            None => ring::kx_group::SECP256R1.start(),
        }
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// Makes the P-256 key pair of the next handshake that leads with P-256 now, while the caller
/// has nothing else to do: a PostgreSQL client waits for the server to start a backend before it
/// may begin TLS. The first one in a process also runs ring's CPU feature detection, `cpuid`
/// instructions that trap to the hypervisor in a virtual machine. A pair made but not used (the
/// server refused TLS) waits for the next handshake; none is used twice.
pub fn prepare_p256_key_share() {
    let Ok(mut ready) = EARLY_P256.ready.lock() else {
        return;
    };
    if ready.is_none() {
        *ready = ring::kx_group::SECP256R1.start().ok();
    }
}

/// The certificates of a PEM file; an error names it as `what` (`CA file`, `certificate file`)
/// and says what is wrong with it (a script fault).
pub fn pem_certificates(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the {what} {path}: {}", super::io_reason(&e)))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the {what} {path} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the {what} {path} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

fn roots(ca_file: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            for cert in pem_certificates(path, "CA file")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA file {path} holds a bad certificate: {e}"))?;
            }
        }
    }
    Ok(roots)
}

/// What a handshake showed of the server's certificates, for `tls_cert`: the chain as the
/// server sent it, and why it did not verify (`None`: it did), whatever the answer.
#[derive(Debug, Default)]
pub struct Seen {
    pub chain: Vec<CertificateDer<'static>>,
    pub error: Option<String>,
}

/// A client that verifies the chain and the name as `Verify::ChainAndName` does, records the
/// result and the chain in the returned `Seen`, and completes the handshake either way, so that
/// an expired or unknown certificate can still be read (nothing is sent over such a session).
pub fn recording_config(
    ca_file: Option<&str>,
    identity: Option<&Identity>,
) -> Result<(ClientConfig, Arc<Mutex<Seen>>), String> {
    let provider = Arc::new(ring::default_provider());
    let roots = Arc::new(roots(ca_file)?);
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording {
            inner,
            seen: seen.clone(),
        }));
    Ok((authenticate(config, identity)?, seen))
}

/// Run the client's side of the handshake to its end. A server that refuses (a client
/// certificate it wanted and did not get) sends an alert and closes; the client's next write can
/// then fail (broken pipe, reset) before the alert is read, which would hide the reason. So after
/// a failed write, whatever the server sent is read and the alert, if any, is the error.
pub fn handshake<T: std::io::Read + std::io::Write>(
    conn: &mut rustls::ClientConnection,
    io: &mut T,
) -> std::io::Result<()> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(io) {
            if matches!(e.kind(), BrokenPipe | ConnectionReset) {
                while conn.read_tls(io).is_ok_and(|n| n > 0) {
                    if let Err(alert) = conn.process_new_packets() {
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, alert));
                    }
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// What to do about a TLS alert the server sent, for a reason line: a server that wants a
/// client certificate, or did not take the one it got. Empty for other errors.
pub fn alert_hint(error: &str) -> String {
    alert_hint_with(error, "cert_file", "key_file")
}

/// As [`alert_hint`], naming the client certificate's settings as `cert` and `key` (a DSN's
/// `sslcert` and `sslkey`).
pub fn alert_hint_with(error: &str, cert: &str, key: &str) -> String {
    let refused = [
        "UnknownCA",
        "BadCertificate",
        "CertificateUnknown",
        "AccessDenied",
        "DecryptError",
    ];
    if error.contains("CertificateRequired") {
        format!(" (the server asks for a client certificate: give {cert} and {key})")
    } else if refused
        .iter()
        .any(|alert| error.contains(&format!("alert: {alert}")))
    {
        format!(" (the server refused the handshake: if it checks client certificates, is {cert} signed by a CA it trusts?)")
    } else {
        String::new()
    }
}

/// The TLS version and cipher suite a handshake agreed, as `tls_cert` and `tls` show them
/// (`TLSv1.3`, `TLS13_AES_256_GCM_SHA384`).
pub fn negotiated(conn: &rustls::ClientConnection) -> Option<(String, String)> {
    let version = match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    };
    let suite = conn.negotiated_cipher_suite()?.suite();
    Some((version, format!("{suite:?}")))
}

#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Ok(mut seen) = self.seen.lock() {
            seen.chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
            seen.error = verdict.err().map(|e| e.to_string());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate, but still checks that the server holds its key (the handshake
/// signatures), so the session is encrypted to whoever answered: libpq's `require`.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in it may differ from the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(key_share: KeyShare) -> Vec<NamedGroup> {
        let config = client_config(Verify::Nothing, None, key_share).unwrap();
        config
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect()
    }

    #[test]
    fn postgres_connections_lead_with_p256_and_keep_the_other_groups() {
        let default = groups(KeyShare::X25519);
        assert_eq!(default[0], NamedGroup::X25519);
        let pg = groups(KeyShare::P256);
        assert_eq!(pg[0], NamedGroup::secp256r1);
        let mut both = (default.clone(), pg.clone());
        both.0.sort_by_key(|g| u16::from(*g));
        both.1.sort_by_key(|g| u16::from(*g));
        assert_eq!(both.0, both.1);
        assert!(pg.len() >= 2, "{pg:?}");
    }

    #[test]
    fn a_prepared_p256_key_pair_serves_one_handshake() {
        let config = client_config(Verify::Nothing, None, KeyShare::P256).unwrap();
        let group = config.crypto_provider().kx_groups[0];
        let public = |kx: Box<dyn ActiveKeyExchange>| kx.pub_key().to_vec();
        prepare_p256_key_share();
        let prepared = EARLY_P256
            .ready
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .pub_key()
            .to_vec();
        // Preparing again keeps the pair waiting; the next handshake takes it, the one after
        // makes its own.
        prepare_p256_key_share();
        let first = public(group.start().unwrap());
        assert_eq!(first, prepared);
        assert!(EARLY_P256.ready.lock().unwrap().is_none());
        let second = public(group.start().unwrap());
        assert_ne!(second, first);
        assert_eq!(first.len(), 65, "an uncompressed P-256 point");
        assert_eq!(second.len(), 65);
    }
}
