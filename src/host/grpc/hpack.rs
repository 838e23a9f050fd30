//! HPACK (RFC 7541), as much as one gRPC call needs: the request's headers are written as
//! literals (never entered in the server's table, so nothing is kept for them), and the answer's
//! are read in full: the static and dynamic tables, integers, and Huffman-coded strings, which
//! every gRPC server sends.

use std::collections::VecDeque;

/// The static table (RFC 7541, Appendix A), from index 1.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The size of the dynamic table this client allows (SETTINGS_HEADER_TABLE_SIZE's default).
pub const TABLE_SIZE: usize = 4096;

/// A header list may decode to at most this many bytes (names and values): a bound on what a
/// peer can make the probe hold.
const MAX_LIST: usize = 64 * 1024;

pub type Header = (String, String);

/// The decoding side of one connection: its dynamic table, newest entry first.
#[derive(Default)]
pub struct Decoder {
    table: VecDeque<Header>,
    size: usize,
    max: Option<usize>,
}

impl Decoder {
    fn max(&self) -> usize {
        self.max.unwrap_or(TABLE_SIZE)
    }

    /// Decode one header block (a HEADERS frame and its CONTINUATIONs).
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<Header>, String> {
        let mut at = 0;
        let mut headers = Vec::new();
        let mut total = 0;
        while at < block.len() {
            let first = block[at];
            let header = if first & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                self.entry(index)?
            } else if first & 0x40 != 0 {
                let header = self.literal(block, &mut at, 6)?;
                self.insert(header.clone());
                header
            } else if first & 0x20 != 0 {
                let size = integer(block, &mut at, 5)?;
                if size > TABLE_SIZE {
                    return Err(format!(
                        "HPACK: a table size update to {size} bytes, above the {TABLE_SIZE} allowed"
                    ));
                }
                self.max = Some(size);
                self.evict(0);
                continue;
            } else {
                // Without indexing (0000) or never indexed (0001): not entered in the table.
                self.literal(block, &mut at, 4)?
            };
            total += header.0.len() + header.1.len();
            if total > MAX_LIST {
                return Err(format!("HPACK: headers larger than {MAX_LIST} bytes"));
            }
            headers.push(header);
        }
        Ok(headers)
    }

    fn entry(&self, index: usize) -> Result<Header, String> {
        match index {
            0 => Err("HPACK: index 0".into()),
            1..=61 => {
                let (name, value) = STATIC[index - 1];
                Ok((name.into(), value.into()))
            }
            _ => self
                .table
                .get(index - 62)
                .cloned()
                .ok_or_else(|| format!("HPACK: index {index} is not in the table")),
        }
    }

    fn literal(&self, block: &[u8], at: &mut usize, prefix: u8) -> Result<Header, String> {
        let index = integer(block, at, prefix)?;
        let name = match index {
            0 => string(block, at)?,
            i => self.entry(i)?.0,
        };
        Ok((name, string(block, at)?))
    }

    fn insert(&mut self, header: Header) {
        let size = 32 + header.0.len() + header.1.len();
        self.evict(size);
        // An entry larger than the whole table empties it and is not entered (RFC 7541, 4.4).
        if size <= self.max() {
            self.size += size;
            self.table.push_front(header);
        }
    }

    /// Drop the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max() {
            let Some((name, value)) = self.table.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= 32 + name.len() + value.len();
        }
    }
}

/// An integer with an `prefix`-bit prefix (RFC 7541, 5.1).
fn integer(block: &[u8], at: &mut usize, prefix: u8) -> Result<usize, String> {
    const TRUNCATED: &str = "HPACK: a header block ends inside an integer";
    let mask = (1u8 << prefix) - 1;
    let mut value = usize::from(*block.get(*at).ok_or(TRUNCATED)? & mask);
    *at += 1;
    if value < usize::from(mask) {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(TRUNCATED)?;
        *at += 1;
        if shift > 21 {
            return Err("HPACK: an integer too large".into());
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// A string literal, Huffman-coded or not (RFC 7541, 5.2).
fn string(block: &[u8], at: &mut usize) -> Result<String, String> {
    let huffman = block.get(*at).is_some_and(|b| b & 0x80 != 0);
    let len = integer(block, at, 7)?;
    let bytes = block
        .get(*at..*at + len)
        .ok_or("HPACK: a header block ends inside a string")?;
    *at += len;
    let bytes = if huffman {
        huffman_decode(bytes)?
    } else {
        bytes.to_vec()
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// How many codes of each length (0 to 30 bits) the Huffman code of RFC 7541, Appendix B has.
/// The code is canonical (codes of one length are consecutive, in the order of their symbols),
/// so the lengths and the symbols in code order are all it takes to decode it.
const COUNTS: [u8; 31] = [
    0, 0, 0, 0, 0, 10, 26, 32, 6, 0, 5, 3, 2, 6, 2, 3, 0, 0, 0, 3, 8, 13, 26, 29, 12, 4, 15, 19,
    29, 0, 4,
];

/// The symbols in code order; the last code of all (30 ones) is EOS.
const SYMBOLS: [u8; 256] = [
    48, 49, 50, 97, 99, 101, 105, 111, 115, 116, 32, 37, 45, 46, 47, 51, 52, 53, 54, 55, 56, 57,
    61, 65, 95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117, 58, 66, 67, 68, 69, 70, 71,
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89, 106, 107, 113, 118, 119,
    120, 121, 122, 38, 42, 44, 59, 88, 90, 33, 34, 40, 41, 63, 39, 43, 124, 35, 62, 0, 36, 64, 91,
    93, 126, 94, 125, 60, 96, 123, 92, 195, 208, 128, 130, 131, 162, 184, 194, 224, 226, 153, 161,
    167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230, 129, 132, 133, 134, 136, 146, 154, 156,
    160, 163, 164, 169, 170, 173, 178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233, 1,
    135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174,
    175, 180, 182, 183, 188, 191, 197, 231, 239, 9, 142, 144, 145, 148, 159, 171, 206, 215, 225,
    236, 237, 199, 207, 234, 235, 192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242,
    243, 255, 203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252,
    253, 254, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28,
    29, 30, 31, 127, 220, 249, 10, 13, 22,
];

/// Decode a Huffman-coded string: canonical decoding one bit at a time (header values are
/// short). Padding must be fewer than 8 one bits (the start of EOS); EOS itself is an error.
pub fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    // The code read so far: its value, its length, and where codes of that length start.
    let (mut code, mut len, mut first, mut index) = (0u32, 0usize, 0u32, 0usize);
    let mut ones = true;
    for byte in bytes {
        for bit in (0..8).rev() {
            let b = u32::from(byte >> bit & 1);
            code |= b;
            ones &= b == 1;
            len += 1;
            let count = u32::from(COUNTS[len]);
            if code < first + count {
                let i = index + (code - first) as usize;
                let Some(symbol) = SYMBOLS.get(i) else {
                    return Err("HPACK: EOS inside a Huffman-coded string".into());
                };
                out.push(*symbol);
                (code, len, first, index, ones) = (0, 0, 0, 0, true);
                continue;
            }
            if len == 30 {
                return Err("HPACK: an invalid Huffman code".into());
            }
            index += count as usize;
            first = (first + count) << 1;
            code <<= 1;
        }
    }
    if len > 7 || !ones {
        return Err("HPACK: invalid padding after a Huffman-coded string".into());
    }
    Ok(out)
}

/// Append one header as a literal that the peer never indexes: by its static index when the
/// name has one, else by name; values in plain text (no Huffman: a few bytes more, no table).
pub fn encode(out: &mut Vec<u8>, name: &str, value: &str) {
    let index = STATIC.iter().position(|(n, _)| *n == name).map(|i| i + 1);
    match index {
        Some(i) => put_integer(out, 0x10, 4, i),
        None => {
            out.push(0x10);
            put_string(out, name);
        }
    }
    put_string(out, value);
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    put_integer(out, 0, 7, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn put_integer(out: &mut Vec<u8>, flags: u8, prefix: u8, value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn list(headers: &[(&str, &str)]) -> Vec<Header> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn huffman_strings_of_rfc_7541() {
        for (coded, plain) in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            ("9bd9 ab", "gzip"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
            ("", ""),
        ] {
            assert_eq!(huffman_decode(&hex(coded)).unwrap(), plain.as_bytes());
        }
        // Symbol 0 is 13 bits (1111111111000), EOS the 30 ones: the table's two ends.
        assert_eq!(huffman_decode(&[0xff, 0xc7]).unwrap(), [0]);
        assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff]).is_err(), "EOS");
        // "0" is 00000: three one bits of padding are fine, a zero bit or a byte of it is not.
        assert_eq!(huffman_decode(&[0x07]).unwrap(), b"0");
        assert!(huffman_decode(&[0x06]).is_err());
        assert!(huffman_decode(&[0x07, 0xff]).is_err());
    }

    #[test]
    fn the_request_examples_of_rfc_7541_with_huffman_coding() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))
                .unwrap(),
            list(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        assert_eq!(d.size, 57);
        assert_eq!(
            d.decode(&hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap()[3..],
            list(&[
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        assert_eq!(
            d.decode(&hex(
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"
            ))
            .unwrap(),
            list(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn the_response_examples_of_rfc_7541_evict_from_a_256_byte_table() {
        let mut d = Decoder {
            max: Some(256),
            ..Decoder::default()
        };
        let first = d
            .decode(&hex(
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                 6c65 2e63 6f6d",
            ))
            .unwrap();
        assert_eq!(first[0], (":status".into(), "302".into()));
        assert_eq!(d.size, 222);
        let second = d.decode(&hex("4803 3330 37c1 c0bf")).unwrap();
        assert_eq!(
            second,
            list(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        let third = d
            .decode(&hex(
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                 3d31",
            ))
            .unwrap();
        assert_eq!(third[1], ("cache-control".into(), "private".into()));
        assert_eq!(third[3], ("location".into(), "https://www.example.com".into()));
        assert_eq!(
            third[5].1,
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
        );
        assert_eq!(d.size, 215);
        assert_eq!(d.table.len(), 3);
    }

    #[test]
    fn bad_blocks_are_errors_not_panics() {
        let mut d = Decoder::default();
        assert!(d.decode(&[0x80]).unwrap_err().contains("index 0"));
        assert!(d.decode(&[0xbe]).unwrap_err().contains("not in the table"));
        assert!(d.decode(&[0x3f, 0xe2, 0x1f]).unwrap_err().contains("above"));
        assert!(d.decode(&[0x3f, 0xe1, 0x1f]).is_ok(), "4096 is allowed");
        assert!(d.decode(&[0x40, 0x05, b'a']).unwrap_err().contains("ends"));
        assert!(d.decode(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(d.decode(&[0x7f]).is_err());
    }

    #[test]
    fn what_is_encoded_decodes_and_is_never_indexed() {
        let mut block = Vec::new();
        encode(&mut block, ":path", "/grpc.health.v1.Health/Check");
        encode(&mut block, "x-request-id", "a".repeat(200).as_str());
        encode(&mut block, "authorization", "Bearer t");
        assert_eq!(block[0], 0x14, ":path is static index 4, never indexed");
        let mut d = Decoder::default();
        let headers = d.decode(&block).unwrap();
        assert_eq!(headers[0].1, "/grpc.health.v1.Health/Check");
        assert_eq!(headers[1], ("x-request-id".into(), "a".repeat(200)));
        assert_eq!(headers[2], ("authorization".into(), "Bearer t".into()));
        assert!(d.table.is_empty());
    }
}
