//! Byte-level scanning of Postfix messages: the leading `WORD: `, prefix sets, and the
//! `key=value, ` fields of delivery records.

/// A cursor over `key=value, ` fields.
pub(super) struct Fields<'a>(pub(super) &'a [u8]);

impl<'a> Fields<'a> {
    pub(super) fn take(&mut self, key: &[u8]) -> Option<&'a [u8]> {
        let rest = self.0.strip_prefix(key)?;
        let end = memchr::memchr(b',', rest)?;
        self.0 = rest[end..].strip_prefix(b", ")?;
        Some(&rest[..end])
    }
    pub(super) fn skip(&mut self, key: &[u8]) {
        if self.0.starts_with(key) {
            let _ = self.take(key);
        }
    }
}

/// Whether `msg` starts with one of `prefixes`; the first byte is compared first, which
/// settles most lines without a call to memcmp.
pub(super) fn starts_with_any(msg: &[u8], prefixes: &[&[u8]]) -> bool {
    let Some(first) = msg.first() else {
        return false;
    };
    prefixes
        .iter()
        .any(|p| p.first() == Some(first) && msg.starts_with(p))
}

/// `WORD: rest` with WORD a run of non-space, non-colon bytes. One pass over the word
/// (a queue ID, `reject`...): most lines answer within a dozen bytes.
pub(super) fn split_word(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    // Skip 8 bytes at a time while none is a colon or a control or space byte (a superset
    // of ASCII white space), then find the exact end byte by byte.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut from = 0;
    while let Some(block) = msg.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(block);
        let x = u64::from_le_bytes(word);
        let colon = x ^ (ONES * u64::from(b':'));
        let any_colon = colon.wrapping_sub(ONES) & !colon & HIGH;
        let any_low = x.wrapping_sub(ONES * 0x21) & !x & HIGH;
        if any_colon | any_low != 0 {
            break;
        }
        from += 8;
    }
    let i = from
        + msg[from..]
            .iter()
            .position(|&b| b == b':' || b.is_ascii_whitespace())?;
    (i > 0 && msg[i] == b':' && msg.get(i + 1) == Some(&b' ')).then(|| (&msg[..i], &msg[i + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8-byte skip must stop where the byte loop alone would.
    #[test]
    fn split_word_matches_a_plain_scan() {
        fn plain(m: &[u8]) -> Option<(&[u8], &[u8])> {
            let i = m
                .iter()
                .position(|&b| b == b':' || b.is_ascii_whitespace())?;
            (i > 0 && m[i] == b':' && m.get(i + 1) == Some(&b' ')).then(|| (&m[..i], &m[i + 2..]))
        }
        let mut cases: Vec<Vec<u8>> = vec![
            b"4PmXkr1lR6z9tDJ: removed".to_vec(),
            b"ABCDEF0123456789ABCDEF: x".to_vec(),
            b"NOQUEUE: reject: RCPT".to_vec(),
            b"connect from x".to_vec(),
            b"12345678: y".to_vec(),
            b"1234567:".to_vec(),
            b"".to_vec(),
        ];
        for sep in [
            b':', b' ', b'\t', b'\r', 0x0c, 0x01, 0x7f, 0x80, 0xff, 0x3b, 0x39,
        ] {
            for at in 0..20 {
                let mut m = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ: z".to_vec();
                m[at] = sep;
                cases.push(m);
            }
        }
        for m in &cases {
            assert_eq!(split_word(m), plain(m), "{:?}", String::from_utf8_lossy(m));
        }
    }
}
