//! The patched postgres-protocol (vendor/postgres-protocol): SCRAM's `Hi()` hashes the key's
//! blocks once and runs each iteration as two SHA-256 compressions, and the client nonce comes
//! straight from getrandom. This plays the server's side of a SCRAM-SHA-256 login (RFC 5802,
//! RFC 7677) with `Hi()` written out as the RFC defines it, and checks the client's proof and
//! its check of the server's signature. The private PostgreSQL servers in tests/sql.rs check the
//! same against a real server.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, KeyInit, Mac};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use sha2::{Digest, Sha256};

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 5802 section 2.2: Hi(str, salt, i) = U1 XOR U2 XOR ... XOR Ui, with a fresh HMAC each time.
fn reference_hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password, &[salt, &[0, 0, 0, 1]].concat());
    let mut result = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (r, x) in result.iter_mut().zip(u) {
            *r ^= x;
        }
    }
    result
}

fn login(password: &str, iterations: u32, salt: &[u8]) {
    let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let client_first = String::from_utf8(client.message().to_vec()).unwrap();
    let bare = client_first.strip_prefix("n,,").unwrap();
    let client_nonce = bare.strip_prefix("n=,r=").unwrap();

    let nonce = format!("{client_nonce}3rfcNHYJY1ZVvWVs7j");
    let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt));
    client.update(server_first.as_bytes()).unwrap();
    let client_final = String::from_utf8(client.message().to_vec()).unwrap();
    let (without_proof, proof) = client_final.split_once(",p=").unwrap();
    assert_eq!(without_proof, format!("c=biws,r={nonce}"));

    let salted = reference_hi(password.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let expected: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(k, s)| k ^ s)
        .collect();
    assert_eq!(proof, STANDARD.encode(&expected), "{iterations} iterations");

    // The client checks the server's signature: a wrong one is refused, the right one taken.
    let server_key = hmac(&salted, b"Server Key");
    let verifier = STANDARD.encode(hmac(&server_key, auth_message.as_bytes()));
    let mut wrong = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let wrong_first = String::from_utf8(wrong.message().to_vec()).unwrap();
    let wrong_nonce = format!("{}x", wrong_first.strip_prefix("n,,n=,r=").unwrap());
    wrong
        .update(format!("r={wrong_nonce},s={},i={iterations}", STANDARD.encode(salt)).as_bytes())
        .unwrap();
    assert!(wrong.finish(format!("v={verifier}").as_bytes()).is_err());
    client.finish(format!("v={verifier}").as_bytes()).unwrap();
}

#[test]
fn scram_proof_matches_the_rfc_definition() {
    // PostgreSQL's default iteration count, a short and a long password, one iteration.
    login("pencil", 4096, b"salt-of-sixteen!");
    login(
        "a password longer than the sixty-four bytes of a SHA-256 block, hashed first",
        4096,
        b"s",
    );
    login("x", 1, &[0xff; 16]);
    // A key of exactly one block (not hashed), and two iterations (one pass of the loop).
    login(&"k".repeat(64), 2, b"salt");
    login(&"k".repeat(65), 2, b"salt");
}

#[test]
fn nonces_are_printable_without_commas_and_differ() {
    let nonce = || {
        let client = ScramSha256::new(b"pencil", ChannelBinding::unsupported());
        let first = String::from_utf8(client.message().to_vec()).unwrap();
        first.strip_prefix("n,,n=,r=").unwrap().to_string()
    };
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let n = nonce();
        assert_eq!(n.len(), 24, "{n}");
        assert!(
            n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','),
            "{n}"
        );
        assert!(seen.insert(n.clone()), "a nonce came twice: {n}");
    }
    // All 93 characters turn up over 200 x 24 draws (each is missed with odds below 1e-20).
    let chars: std::collections::HashSet<u8> = seen.iter().flat_map(|n| n.bytes()).collect();
    assert_eq!(chars.len(), 93);
}
