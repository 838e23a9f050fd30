//! The patched mysql_common (vendor/mysql_common): its regular expressions were replaced by
//! hand-written byte checks. These cases pin the replacements to what the expressions matched.

use mysql_common::{
    constants::{CapabilityFlags, StatusFlags},
    crypto::der::{pem_to_der, PubKeyFileType},
    packets::HandshakePacket,
};

fn handshake(version: &str) -> HandshakePacket<'_> {
    HandshakePacket::new(
        10,
        version.as_bytes(),
        1,
        [0; 8],
        None::<&[u8]>,
        CapabilityFlags::empty(),
        0,
        StatusFlags::empty(),
        None::<&[u8]>,
    )
}

#[test]
fn server_versions_parse_as_the_expressions_did() {
    // `^(\d{1,2})\.(\d{1,2})\.(\d{1,3})(.*)`
    for (version, parsed) in [
        ("8.0.36", Some((8, 0, 36))),
        ("10.11.19-MariaDB-0+deb12u1", Some((10, 11, 19))),
        ("5.5.5-10.11.19-MariaDB", Some((5, 5, 5))),
        ("8.0.1234", Some((8, 0, 123))),
        ("8.0.x", None),
        ("123.0.1", None),
        ("8..1", None),
        ("v8.0.1", None),
        ("", None),
    ] {
        assert_eq!(
            handshake(version).server_version_parsed(),
            parsed,
            "{version}"
        );
    }
    // `^(?:5.5.5-)?(\d{1,2})\.(\d{1,2})\.(\d{1,3})-MariaDB`
    for (version, parsed) in [
        ("5.5.5-10.11.19-MariaDB-0+deb12u1", Some((10, 11, 19))),
        ("10.11.19-MariaDB", Some((10, 11, 19))),
        ("5x5y5-11.4.2-MariaDB", Some((11, 4, 2))),
        ("5.5.5-10.11.1234-MariaDB", None),
        ("8.0.36", None),
        ("10.11.19-mariadb", None),
    ] {
        assert_eq!(
            handshake(version).maria_db_server_version_parsed(),
            parsed,
            "{version}"
        );
    }
}

#[test]
fn public_keys_are_found_in_pem() {
    let pkcs8 = "junk\n-----BEGIN PUBLIC KEY-----\nAAEC\nAw==\n-----END PUBLIC KEY-----\n";
    assert_eq!(pem_to_der(pkcs8), (vec![0, 1, 2, 3], PubKeyFileType::Pkcs8));
    let pkcs1 = "-----BEGIN RSA PUBLIC KEY-----\nBAU=\n-----END RSA PUBLIC KEY-----";
    assert_eq!(pem_to_der(pkcs1), (vec![4, 5], PubKeyFileType::Pkcs1));
}
