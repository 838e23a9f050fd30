//! `mqtt_ping(url)`: MQTT 3.1.1 (or 5) CONNECT with the URL's login, CONNACK's code by its
//! name, then DISCONNECT. Two packets each way, written here.

use std::rc::Rc;

use rhai::{Engine, NativeCallContext};

use crate::host::{
    decl::{HostFn, Opt, OptType, TIMEOUT, TIMEOUT_MS},
    options::Options,
    wire::{self, Conn, Protocol, Scheme},
    Host, RhaiResult,
};

pub const MQTT_PING: HostFn = wire::url_check(
    "mqtt_ping",
    &[
        "mqtt_ping(url: string) -> bool",
        "mqtt_ping(url: string, options: map) -> bool",
    ],
    "true when an MQTT broker accepts the CONNECT (login, client id); false with the CONNACK code's name",
    &[
        TIMEOUT,
        TIMEOUT_MS,
        Opt {
            key: "client_id",
            ty: OptType::String,
            default: "rhai-probe-PID",
            doc: "the client identifier; a broker drops an older connection with the same one",
        },
        Opt {
            key: "version",
            ty: OptType::Int,
            default: "4",
            doc: "protocol level: `4` is MQTT 3.1.1 (`311` too), `5` is MQTT 5",
        },
        wire::INSECURE,
        wire::CA_FILE,
        wire::SERVER_NAME,
        wire::CERT_FILE,
        wire::KEY_FILE,
    ],
    register,
);

pub(crate) const MQTT: Protocol = Protocol {
    decl: &MQTT_PING,
    schemes: &[
        Scheme {
            prefix: "mqtt://",
            tls: false,
            port: 1883,
        },
        Scheme {
            prefix: "mqtts://",
            tls: true,
            port: 8883,
        },
    ],
    usage: "mqtt://[user:password@]host[:port] or mqtts:// for TLS",
    plain: "is the port serving plain MQTT? (use mqtt:// for a port without TLS, usually 1883)",
    lone_userinfo_is_secret: false,
    tls_after_greeting: false,
};

/// The remaining-length field: 7 bits a byte, low first.
fn varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn string(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(65535)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// CONNECT with a clean session and a 30 s keep-alive (the connection lives milliseconds).
fn connect(level: u8, client_id: &str, user: Option<&str>, password: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(level);
    // A password needs a user name in 3.1.1: `mqtt://:pw@h` sends an empty one.
    let user = user.or(password.map(|_| ""));
    let flags = 0x02 | if user.is_some() { 0x80 } else { 0 } | if password.is_some() { 0x40 } else { 0 };
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    string(&mut body, client_id);
    if let Some(user) = user {
        string(&mut body, user);
    }
    if let Some(password) = password {
        string(&mut body, password);
    }
    let mut out = vec![0x10];
    varint(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// A CONNACK return code (3.1.1) by its name in the specification.
fn return_code(code: u8) -> String {
    match code {
        1 => "connection refused: unacceptable protocol version (try version: 5 or 4)".into(),
        2 => "connection refused: identifier rejected (the client id)".into(),
        3 => "connection refused: server unavailable".into(),
        4 => "connection refused: bad user name or password".into(),
        5 => "connection refused: not authorised".into(),
        c => format!("connection refused: return code {c}"),
    }
}

/// A CONNACK reason code (MQTT 5) by its name.
fn reason_code(code: u8) -> String {
    let name = match code {
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version (try version: 4)",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8C => "bad authentication method",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9F => "connection rate exceeded",
        c => return format!("connection refused: reason code 0x{c:02X}"),
    };
    format!("connection refused: {name} (0x{code:02X})")
}

fn speak(conn: &mut Conn, packet: &[u8], level: u8) -> Result<String, String> {
    conn.send(packet)?;
    let head = conn
        .exact(2)
        .map_err(|e| e.waiting("an MQTT broker", "to CONNECT"))?;
    // CONNACK: type 2, remaining length 2 (3.1.1) or 3 and more (5: properties follow).
    let fits = head[0] == 0x20 && head[1] < 0x80 && head[1] >= 2;
    if !fits {
        return Err(format!(
            "not an MQTT broker (it answered {})",
            wire::shown(&[head, conn.pending().to_vec()].concat())
        ));
    }
    let rest = conn
        .exact(head[1] as usize)
        .map_err(|e| e.waiting("an MQTT broker", "to CONNECT"))?;
    let code = rest[1];
    if code != 0 {
        // MQTT 5's CONNACK has properties after the code; a 3.1.1 broker asked for 5 answers
        // with 3.1.1's two bytes (code 1, unacceptable protocol version).
        return Err(if level == 5 && head[1] > 2 {
            reason_code(code)
        } else {
            return_code(code)
        });
    }
    let _ = conn.send(if level == 5 { &[0xE0, 1, 0][..] } else { &[0xE0, 0][..] });
    Ok(format!(
        "CONNACK accepted (MQTT {})",
        if level == 5 { "5" } else { "3.1.1" }
    ))
}

fn mqtt_ping(host: &Host, ctx: &NativeCallContext, text: &str, options: Options) -> RhaiResult<bool> {
    let url = MQTT.parse(ctx, text)?;
    let fault = |e: crate::host::HostError| e.into_fault("mqtt_ping", ctx);
    let level = match options.int("version").map_err(fault)? {
        None | Some(4) | Some(311) => 4,
        Some(5) => 5,
        Some(v) => {
            return Err(MQTT.fault(
                ctx,
                text,
                &format!("option 'version' is {v}; use 4 (MQTT 3.1.1) or 5 (MQTT 5)"),
            ))
        }
    };
    let client_id = options
        .string("client_id")
        .map_err(fault)?
        .unwrap_or_else(|| format!("rhai-probe-{}", std::process::id()));
    let packet = connect(
        level,
        &client_id,
        url.user.as_deref(),
        url.password.as_deref(),
    );
    MQTT.ping(host, ctx, text, &url, &options, |conn| {
        speak(conn, &packet, level)
    })
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    wire::register(engine, host, &MQTT_PING, mqtt_ping);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packets() {
        // The example of MQTT 3.1.1's section 3.1: level 4, clean session, keep-alive 30.
        assert_eq!(
            connect(4, "id", None, None),
            b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02id"
        );
        let p = connect(4, "c", Some("u"), Some("pw"));
        assert_eq!(p[9], 0xC2);
        assert!(p.ends_with(b"\x00\x01u\x00\x02pw"));
        assert_eq!(connect(4, "c", None, Some("pw"))[9], 0xC2);
        assert_eq!(connect(5, "c", None, None)[8], 5);
        let mut long = Vec::new();
        varint(&mut long, 321);
        assert_eq!(long, [0xC1, 0x02]);
        assert!(return_code(4).contains("bad user name or password"));
        assert!(reason_code(0x87).contains("not authorized (0x87)"));
    }
}
