//! The client side of HTTP/2 (RFC 9113) for one request on a fresh connection: what a gRPC
//! call needs and no more. The preface, settings, a window large enough for the answer, the
//! request's HEADERS and DATA go out in one write; then frames are read until the stream ends,
//! answering SETTINGS and PING as the protocol requires. GOAWAY, RST_STREAM, a peer that is not
//! HTTP/2 and one that breaks the protocol end the call with a reason that names them.

use super::hpack::{self, Header};
use crate::host::wire::{shown, Conn, Io};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// SETTINGS_MAX_FRAME_SIZE's default, which this client keeps: larger frames are an error.
const MAX_FRAME: usize = 16_384;
/// The window this client opens for the answer, on its stream and on the connection: an
/// answer larger than this is refused (a health answer is a few bytes; a `List` of every
/// service a few kilobytes).
pub const MAX_BODY: usize = 1 << 20;
const DEFAULT_WINDOW: usize = 65_535;

/// The one stream this client opens.
const STREAM: u32 = 1;

/// What came back on the stream: the header list, the body, and the trailers (empty for a
/// "trailers-only" answer, whose one header list ended the stream).
pub struct Response {
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub trailers: Vec<Header>,
}

impl Response {
    /// A header's value, from the trailers first (where gRPC puts its status), then the headers.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .chain(&self.headers)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Send one request (`headers` in order, pseudo-headers first) with `body`, and read its answer.
pub fn exchange(conn: &mut Conn, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
    let mut out = PREFACE.to_vec();
    // ENABLE_PUSH 0; INITIAL_WINDOW_SIZE for the answer; then the connection's own window.
    let mut settings = Vec::new();
    settings.extend_from_slice(&[0, 2, 0, 0, 0, 0]);
    settings.extend_from_slice(&[0, 4]);
    settings.extend_from_slice(&(MAX_BODY as u32).to_be_bytes());
    frame(&mut out, SETTINGS, 0, 0, &settings);
    let more = (MAX_BODY - DEFAULT_WINDOW) as u32;
    frame(&mut out, WINDOW_UPDATE, 0, 0, &more.to_be_bytes());
    let mut block = Vec::new();
    for (name, value) in headers {
        hpack::encode(&mut block, name, value);
    }
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() { END_HEADERS } else { 0 };
        frame(&mut out, kind, flags, STREAM, chunk);
        kind = CONTINUATION;
    }
    // The peer's initial window (65,535 until its SETTINGS say otherwise) bounds the body.
    debug_assert!(body.len() <= DEFAULT_WINDOW);
    let mut chunks = body.chunks(MAX_FRAME).peekable();
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() { END_STREAM } else { 0 };
        frame(&mut out, DATA, flags, STREAM, chunk);
    }
    conn.send(&out)?;
    let response = answer(conn)?;
    // Close politely: GOAWAY, no error, no stream of the server's processed.
    let mut bye = Vec::new();
    frame(&mut bye, GOAWAY, 0, 0, &[0; 8]);
    let _ = conn.send(&bye);
    Ok(response)
}

/// Read frames until the stream ends.
fn answer(conn: &mut Conn) -> Result<Response, String> {
    let mut decoder = hpack::Decoder::default();
    let mut headers: Option<Vec<Header>> = None;
    let mut body = Vec::new();
    // A GOAWAY that lets our stream finish: said if the connection then closes early.
    let mut going_away: Option<String> = None;
    let mut first = true;
    loop {
        let read = read_frame(conn, first);
        let (kind, flags, stream, payload) = match (read, &going_away) {
            (Ok(frame), _) => frame,
            (Err(e), Some(goaway)) => return Err(format!("{e} after {goaway}")),
            (Err(e), None) => return Err(e),
        };
        if first && kind != SETTINGS {
            return Err(format!(
                "not an HTTP/2 server: its first frame was not SETTINGS (type {kind}); gRPC needs HTTP/2"
            ));
        }
        first = false;
        match kind {
            SETTINGS if flags & ACK == 0 => {
                if payload.len() % 6 != 0 {
                    return Err(protocol("a SETTINGS frame whose length is not a multiple of 6"));
                }
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                conn.send(&ack)?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, &payload);
                conn.send(&pong)?;
            }
            GOAWAY => {
                let (last, code) = match payload.get(..8) {
                    Some(p) => (
                        u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff,
                        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                    ),
                    None => return Err(protocol("a GOAWAY frame shorter than 8 bytes")),
                };
                let debug = String::from_utf8_lossy(&payload[8..]);
                let said = if debug.is_empty() {
                    format!("GOAWAY ({})", error_name(code))
                } else {
                    format!("GOAWAY ({}, {:?})", error_name(code), debug)
                };
                if last < STREAM || code != 0 {
                    return Err(format!("the server sent {said}: it will not answer this call"));
                }
                going_away = Some(said);
            }
            RST_STREAM if stream == STREAM => {
                let code = payload
                    .get(..4)
                    .map_or(0, |p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
                return Err(format!(
                    "the server reset the stream (RST_STREAM {})",
                    error_name(code)
                ));
            }
            PUSH_PROMISE => return Err(protocol("PUSH_PROMISE, though push is disabled")),
            HEADERS => {
                let mut block = fragment(flags, &payload)?;
                let mut end = flags & END_HEADERS != 0;
                while !end {
                    let (kind, more, on, payload) = read_frame(conn, false)?;
                    if kind != CONTINUATION || on != stream {
                        return Err(protocol("a header block not followed by its CONTINUATION"));
                    }
                    block.extend_from_slice(&payload);
                    if block.len() > 4 * MAX_FRAME {
                        return Err(protocol("a header block larger than 64 KiB"));
                    }
                    end = more & END_HEADERS != 0;
                }
                // Decoded whatever its stream, to keep the table in step with the server's.
                let list = decoder.decode(&block)?;
                if stream != STREAM {
                    continue;
                }
                let ends = flags & END_STREAM != 0;
                match headers.take() {
                    None if ends => {
                        return Ok(Response {
                            headers: list,
                            body,
                            trailers: Vec::new(),
                        })
                    }
                    None => headers = Some(list),
                    Some(_) if !ends => {
                        return Err(protocol("a second header list that does not end the stream"))
                    }
                    Some(headers) => {
                        return Ok(Response {
                            headers,
                            body,
                            trailers: list,
                        })
                    }
                }
            }
            CONTINUATION => return Err(protocol("a CONTINUATION frame out of place")),
            DATA if stream == STREAM => {
                if headers.is_none() {
                    return Err(protocol("DATA before the response's headers"));
                }
                body.extend_from_slice(&unpadded(flags, &payload)?);
                if body.len() > MAX_BODY {
                    return Err(format!("the answer is larger than {MAX_BODY} bytes"));
                }
                if flags & END_STREAM != 0 {
                    return Ok(Response {
                        headers: headers.unwrap_or_default(),
                        body,
                        trailers: Vec::new(),
                    });
                }
            }
            // WINDOW_UPDATE, PRIORITY, acknowledgements, other streams, unknown types: ignored,
            // as RFC 9113 says of frames a peer need not act on.
            _ => {}
        }
    }
}

fn protocol(what: &str) -> String {
    format!("HTTP/2 protocol error: the server sent {what}")
}

/// A frame's type, flags, stream and payload.
fn read_frame(conn: &mut Conn, first: bool) -> Result<(u8, u8, u32, Vec<u8>), String> {
    let head = conn.exact(9).map_err(|e| not_http2(e, first))?;
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    if first && (head.starts_with(b"HTTP/") || len > MAX_FRAME) {
        let mut seen = head;
        seen.extend_from_slice(conn.pending());
        return Err(not_http2(Io::Unexpected(seen), true));
    }
    if len > MAX_FRAME {
        return Err(protocol(&format!(
            "a frame of {len} bytes, above the {MAX_FRAME} allowed"
        )));
    }
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let payload = conn.exact(len).map_err(|e| e.reason("an HTTP/2 server"))?;
    Ok((head[3], head[4], stream, payload))
}

/// What a failure to read the server's first frame says about the port.
fn not_http2(e: Io, first: bool) -> String {
    if !first {
        return e.reason("an HTTP/2 server");
    }
    match e {
        Io::Unexpected(bytes) if bytes.starts_with(b"HTTP/") => format!(
            "not an HTTP/2 server: it answered {} (HTTP/1.x); gRPC needs HTTP/2",
            shown(&bytes)
        ),
        // A TLS record (an alert) in answer to plain text.
        Io::Unexpected(bytes) if bytes.starts_with(&[0x15, 0x03]) => {
            "the port speaks TLS (it answered with a TLS alert): use tls: true or a grpcs:// target"
                .into()
        }
        Io::Unexpected(bytes) => format!(
            "not an HTTP/2 server (it answered {}); gRPC needs HTTP/2",
            shown(&bytes)
        ),
        Io::Closed => "the server closed the connection without answering the HTTP/2 preface: not a gRPC port, or a TLS one (use tls: true)".into(),
        Io::Failed(reason) => {
            Io::Failed(reason).waiting("an HTTP/2 (gRPC) server", "to the HTTP/2 preface")
        }
    }
}

/// A HEADERS frame's header block fragment: without its padding and priority fields.
fn fragment(flags: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut rest = unpadded(flags, payload)?;
    if flags & PRIORITY != 0 {
        if rest.len() < 5 {
            return Err(protocol("a HEADERS frame too short for its priority"));
        }
        rest.drain(..5);
    }
    Ok(rest)
}

fn unpadded(flags: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
    if flags & PADDED == 0 {
        return Ok(payload.to_vec());
    }
    let pad = usize::from(*payload.first().ok_or_else(|| protocol("an empty padded frame"))?);
    if pad + 1 > payload.len() {
        return Err(protocol("more padding than frame"));
    }
    Ok(payload[1..payload.len() - pad].to_vec())
}

/// An HTTP/2 error code's name (RFC 9113, 7).
pub fn error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    match NAMES.get(code as usize) {
        Some(name) => (*name).into(),
        None => format!("error code {code:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_laid_out_as_rfc_9113_says() {
        let mut out = Vec::new();
        frame(&mut out, HEADERS, END_HEADERS, 1, b"abc");
        assert_eq!(out, [0, 0, 3, 1, 4, 0, 0, 0, 1, b'a', b'b', b'c']);
        assert_eq!(unpadded(PADDED, &[2, b'x', 0, 0]).unwrap(), b"x");
        assert!(unpadded(PADDED, &[4, b'x']).is_err());
        assert_eq!(
            fragment(PRIORITY, &[0, 0, 0, 3, 16, b'h']).unwrap(),
            b"h"
        );
        assert_eq!(error_name(11), "ENHANCE_YOUR_CALM");
        assert_eq!(error_name(0x99), "error code 0x99");
    }
}
