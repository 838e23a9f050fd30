//! The connections behind `http_get` and `http_request`: TCP (ureq's connector) or a unix socket
//! (`unix_socket`, as curl's `--unix-socket`), then TLS with this crate's rustls settings
//! (`tls::recording_config`: bundled roots or `ca_file`, a client certificate), keeping what the
//! handshake showed for the response's `tls` key. A certificate that does not verify fails the
//! request before a byte of it is sent, unless `insecure: true`.

use std::{
    fmt,
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

use rustls::{pki_types::ServerName, ClientConfig, ClientConnection, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, TcpConnector, Transport,
    TransportAdapter,
};

use crate::host::{tls, wire};

/// The TLS side of one request.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub seen: Arc<Mutex<tls::Seen>>,
    /// Go on with a certificate that does not verify.
    pub insecure: bool,
}

/// What a TLS handshake agreed and showed.
#[derive(Default)]
pub struct Handshake {
    pub seen: tls::Seen,
    pub version: String,
    pub cipher: String,
}

/// What the request being sent asks of its connections, and what its last handshake showed.
/// One per agent, so one per run: a script's calls are sequential.
#[derive(Default)]
pub struct Session {
    pub unix_socket: Option<PathBuf>,
    pub tls: Option<Tls>,
    pub handshake: Option<Handshake>,
}

pub type Shared = Arc<Mutex<Session>>;

pub fn lock(shared: &Shared) -> MutexGuard<'_, Session> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// ureq's connector chain for this crate: the socket, then TLS.
pub struct Connect(pub Shared);

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connect")
    }
}

impl Connector<()> for Connect {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let (unix_socket, settings) = {
            let mut session = lock(&self.0);
            session.handshake = None;
            (session.unix_socket.clone(), session.tls.clone())
        };
        let plain: Box<dyn Transport> = match unix_socket {
            Some(path) => {
                let budget = *details.timeout.not_zero().unwrap_or(ureq_secs(30));
                let stream = wire::connect_unix(&path, budget).map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut => ureq::Error::Timeout(ureq::Timeout::Connect),
                    _ => ureq::Error::Io(e),
                })?;
                Box::new(UnixTransport::new(stream, details))
            }
            None => Connector::<()>::connect(&TcpConnector::default(), details, None)?
                .ok_or(ureq::Error::ConnectionFailed)?
                .boxed(),
        };
        if !details.needs_tls() {
            return Ok(Some(plain));
        }
        let Some(settings) = settings else {
            return Err(ureq::Error::Tls("no TLS settings for this request"));
        };
        if let Ok(mut seen) = settings.seen.lock() {
            *seen = tls::Seen::default();
        }
        let host = details.uri.host().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ureq::Error::Tls("the host is not a valid TLS server name"))?;
        let mut conn = ClientConnection::new(settings.config.clone(), name)?;
        let mut sock = TransportAdapter::new(plain, details.current_time.clone());
        sock.set_timeout(details.timeout);
        tls::handshake(&mut conn, &mut sock)?;
        let seen = settings
            .seen
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let refused = seen.error.clone().filter(|_| !settings.insecure);
        let (version, cipher) = tls::negotiated(&conn).unwrap_or_default();
        lock(&self.0).handshake = Some(Handshake {
            seen,
            version,
            cipher,
        });
        if let Some(error) = refused {
            // Nothing of the request has been sent: its headers may carry a credential.
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                error,
            )));
        }
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Box::new(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

fn ureq_secs(secs: u64) -> ureq::unversioned::transport::time::Duration {
    ureq::unversioned::transport::time::Duration::from_secs(secs)
}

/// A timed-out read or write as ureq reports it; anything else as it is.
fn timed(e: io::Error, timeout: NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

/// A unix-socket connection, its reads and writes bounded by the time ureq says is left.
struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

impl UnixTransport {
    fn new(stream: UnixStream, details: &ConnectionDetails) -> UnixTransport {
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        UnixTransport { stream, buffers }
    }
}

impl fmt::Debug for UnixTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnixTransport")
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream
            .set_write_timeout(timeout.not_zero().map(|t| *t))?;
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output).map_err(|e| timed(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(timeout.not_zero().map(|t| *t))?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match self.stream.read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        }
        .map_err(|e| timed(e, timeout))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// Never reused: the agent keeps no idle connections.
    fn is_open(&mut self) -> bool {
        false
    }
}

/// TLS over either kind of connection, as ureq's own rustls transport.
struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
