//! A message as a recipe: the small bytes between MIME parts inline, and each part body as
//! blobs of its own, so a part that recurs in other messages (a forwarded attachment, one
//! newsletter delivered to many) is stored once. A base64 part is stored decoded only when
//! encoding it again gives back exactly the original bytes; large contents are split into
//! content-defined chunks. Rebuilding gives the original message byte for byte.

use base64::Engine as _;
use mail_parser::MimeHeaders as _;
use serde::{Deserialize, Serialize};

use crate::dict::Kind;
use crate::error::BackupError;
use crate::id::BlobId;
use crate::repo::{PutStats, Repository};

/// Part bodies shorter than this stay inline in the recipe: a blob each would cost more.
pub const MIN_PART: usize = 1024;
/// Contents longer than this are cut into content-defined chunks.
pub const CHUNK_ABOVE: usize = 1 << 20;
const CHUNK_MIN: usize = 64 * 1024;
const CHUNK_AVG: usize = 256 * 1024;
const CHUNK_MAX: usize = 1024 * 1024;

/// How to rebuild one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// The message's size.
    pub size: u64,
    /// BLAKE3 of the whole message, checked after rebuilding.
    pub hash: BlobId,
    /// Its pieces, in order.
    pub segments: Vec<Segment>,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Segment {
    /// Bytes kept in the recipe (headers, boundaries, small bodies): the JSON gives their
    /// length, the bytes follow the JSON in the recipe's blob (raw, so they compress well).
    Inline {
        /// How many bytes.
        len: usize,
        /// The bytes.
        #[serde(skip)]
        data: Vec<u8>,
    },
    /// Bytes stored as blobs, concatenated.
    Raw {
        /// The blobs.
        chunks: Vec<BlobId>,
    },
    /// Decoded content stored as blobs, to be base64-encoded again with this layout.
    Base64 {
        /// The blobs of the decoded content.
        chunks: Vec<BlobId>,
        /// Characters per line.
        line: usize,
        /// Lines end with CRLF (else LF).
        crlf: bool,
        /// The last line has a line end too.
        final_break: bool,
    },
}

/// The layout of a base64 body that re-encoding reproduces exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    line: usize,
    crlf: bool,
    final_break: bool,
}

fn encode_base64(data: &[u8], l: Layout) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let eol: &[u8] = if l.crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(text.len() + text.len() / l.line.max(1) * 2 + 2);
    let lines: Vec<&[u8]> = text.as_bytes().chunks(l.line.max(1)).collect();
    for (i, line) in lines.iter().enumerate() {
        out.extend_from_slice(line);
        if i + 1 < lines.len() || l.final_break {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// The decoded content and layout, if re-encoding gives `body` back exactly.
fn decode_exact(body: &[u8]) -> Option<(Vec<u8>, Layout)> {
    let first = body.iter().position(|&b| b == b'\n')?;
    let crlf = first > 0 && body[first - 1] == b'\r';
    let line = if crlf { first - 1 } else { first };
    if line == 0 || line % 4 != 0 {
        return None;
    }
    let eol_len = if crlf { 2 } else { 1 };
    let final_break = body.ends_with(if crlf { b"\r\n" } else { b"\n" });
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if compact.len() + eol_len * body.iter().filter(|&&b| b == b'\n').count() != body.len() {
        return None;
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .ok()?;
    let layout = Layout {
        line,
        crlf,
        final_break,
    };
    (encode_base64(&data, layout) == body).then_some((data, layout))
}

/// Stores content as one blob or as content-defined chunks.
fn put_chunks(
    repo: &Repository,
    data: &[u8],
    kind: Option<Kind>,
    stats: &mut PutStats,
) -> Result<Vec<BlobId>, BackupError> {
    if data.len() <= CHUNK_ABOVE {
        return Ok(vec![repo.put_kind(data, kind, stats)?]);
    }
    fastcdc::v2020::FastCDC::new(data, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX)
        .map(|c| repo.put_kind(&data[c.offset..c.offset + c.length], kind, stats))
        .collect()
}

/// The byte ranges of the message's leaf part bodies worth a blob of their own, in order.
fn part_ranges(raw: &[u8]) -> Vec<(usize, usize)> {
    // Only the MIME headers matter for where parts lie: parsing the rest (Received, addresses)
    // cost a tenth of a first backup.
    let parser = mail_parser::MessageParser::new()
        .with_mime_headers()
        .default_header_ignore();
    let Some(head) = parser.parse_headers(raw) else {
        return Vec::new();
    };
    let nested = head.root_part().content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart") || c.ctype().eq_ignore_ascii_case("message")
    });
    if !nested {
        // One body: where it lies needs no full parse (which decodes it, charset and all).
        let start = body_start(raw);
        return if raw.len() - start >= MIN_PART {
            vec![(start, raw.len())]
        } else {
            Vec::new()
        };
    }
    let Some(message) = parser.parse(raw) else {
        return Vec::new();
    };
    // A nested message/rfc822 is one leaf here: its own parts' offsets count from its start.
    let mut ranges: Vec<(usize, usize)> = message
        .parts
        .iter()
        .filter(|p| !matches!(p.body, mail_parser::PartType::Multipart(_)))
        .map(|p| (p.offset_body as usize, p.offset_end as usize))
        .filter(|(s, e)| e > s && e - s >= MIN_PART && *e <= raw.len())
        .collect();
    ranges.sort_unstable();
    // Leaf bodies never overlap; keep that an invariant whatever the parser reports.
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if out.last().is_none_or(|last| r.0 >= last.1) {
            out.push(r);
        }
    }
    out
}

/// Where the body starts: after the first empty line, as the parser sees it (a line of
/// nothing but its LF or CRLF); the end when there is none.
fn body_start(raw: &[u8]) -> usize {
    if raw.first() == Some(&b'\n') {
        return 1;
    }
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    let mut at = 0;
    while let Some(i) = raw[at..].iter().position(|&b| b == b'\n') {
        let next = at + i + 1;
        match raw.get(next..) {
            Some([b'\n', ..]) => return next + 1,
            Some([b'\r', b'\n', ..]) => return next + 2,
            _ => at = next,
        }
    }
    raw.len()
}

/// The first bytes of a recipe blob: format 1 (JSON length, JSON, inline bytes).
const RECIPE_MAGIC: &[u8; 4] = b"MFR1";

impl Recipe {
    /// The recipe's blob: magic, u32 length of the JSON, the JSON, the inline bytes in order.
    pub fn encode(&self) -> Result<Vec<u8>, BackupError> {
        let json = serde_json::to_vec(self).map_err(|e| BackupError::Format(e.to_string()))?;
        let len = u32::try_from(json.len())
            .map_err(|_| BackupError::Format("recipe larger than 4 GiB".into()))?;
        let mut out = RECIPE_MAGIC.to_vec();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&json);
        for s in &self.segments {
            if let Segment::Inline { data, .. } = s {
                out.extend_from_slice(data);
            }
        }
        Ok(out)
    }

    /// Reads a recipe blob, checking that the inline bytes are all there.
    pub fn decode(blob: &[u8]) -> Result<Recipe, BackupError> {
        let bad = |why: &str| BackupError::Corrupt(format!("recipe: {why}"));
        let rest = blob
            .strip_prefix(RECIPE_MAGIC.as_slice())
            .ok_or_else(|| bad("unknown header"))?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let mut n4 = [0u8; 4];
        n4.copy_from_slice(len);
        let (json, mut tail) = rest
            .split_at_checked(u32::from_le_bytes(n4) as usize)
            .ok_or_else(|| bad("truncated"))?;
        let mut recipe: Recipe = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
        for s in &mut recipe.segments {
            if let Segment::Inline { len, data } = s {
                let (bytes, after) = tail
                    .split_at_checked(*len)
                    .ok_or_else(|| bad("inline bytes truncated"))?;
                *data = bytes.to_vec();
                tail = after;
            }
        }
        if !tail.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(recipe)
    }
}

/// Stores a recipe as a blob (compressed with the header dictionary: it holds the header).
pub fn save(
    repo: &Repository,
    recipe: &Recipe,
    stats: &mut PutStats,
) -> Result<BlobId, BackupError> {
    repo.put_kind(&recipe.encode()?, Some(Kind::Header), stats)
}

/// Reads a recipe blob.
pub fn load(repo: &Repository, id: &BlobId) -> Result<Recipe, BackupError> {
    Recipe::decode(&repo.get(id)?).map_err(|e| match e {
        BackupError::Corrupt(m) => BackupError::Corrupt(format!("blob {id}: {m}")),
        e => e,
    })
}

/// The Message-ID of a recipe's message, from its header (always inline), without reading
/// any blob: how a message that cannot be rebuilt is still named.
pub fn message_id(recipe: &Recipe) -> Option<String> {
    let Segment::Inline { data, .. } = recipe.segments.first()? else {
        return None;
    };
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| data.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(data.len());
    let mut header = data[..end].to_vec();
    header.extend_from_slice(b"\r\n\r\n");
    mail_parser::MessageParser::default()
        .parse_headers(&header)
        .and_then(|m| m.message_id().map(str::to_string))
}

/// Splits a message into a recipe, storing its parts.
pub fn store(repo: &Repository, raw: &[u8], stats: &mut PutStats) -> Result<Recipe, BackupError> {
    let ranges = if raw.len() >= MIN_PART {
        part_ranges(raw)
    } else {
        Vec::new()
    };
    let mut segments = Vec::new();
    let mut at = 0;
    for (start, end) in ranges {
        if start > at {
            segments.push(Segment::Inline {
                len: start - at,
                data: raw[at..start].to_vec(),
            });
        }
        let body = &raw[start..end];
        segments.push(match decode_exact(body) {
            Some((decoded, l)) => Segment::Base64 {
                chunks: put_chunks(repo, &decoded, None, stats)?,
                line: l.line,
                crlf: l.crlf,
                final_break: l.final_break,
            },
            None => Segment::Raw {
                chunks: put_chunks(repo, body, Some(Kind::Text), stats)?,
            },
        });
        at = end;
    }
    if at < raw.len() {
        // A message without parts worth storing apart (or unparsable) is one raw piece.
        let rest = &raw[at..];
        segments.push(if at == 0 && rest.len() >= MIN_PART {
            Segment::Raw {
                chunks: put_chunks(repo, rest, Some(Kind::Text), stats)?,
            }
        } else {
            Segment::Inline {
                len: rest.len(),
                data: rest.to_vec(),
            }
        });
    }
    Ok(Recipe {
        size: raw.len() as u64,
        hash: BlobId::of(raw),
        segments,
    })
}

/// Every blob a recipe needs.
pub fn blobs(recipe: &Recipe) -> impl Iterator<Item = &BlobId> {
    recipe.segments.iter().flat_map(|s| match s {
        Segment::Inline { .. } => [].iter(),
        Segment::Raw { chunks } | Segment::Base64 { chunks, .. } => chunks.iter(),
    })
}

/// Rebuilds the message, checking its size and hash.
pub fn rebuild(repo: &Repository, recipe: &Recipe) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::with_capacity(recipe.size as usize);
    for s in &recipe.segments {
        match s {
            Segment::Inline { data, .. } => out.extend_from_slice(data),
            Segment::Raw { chunks } => {
                for c in chunks {
                    out.extend(repo.get(c)?);
                }
            }
            Segment::Base64 {
                chunks,
                line,
                crlf,
                final_break,
            } => {
                let mut data = Vec::new();
                for c in chunks {
                    data.extend(repo.get(c)?);
                }
                let layout = Layout {
                    line: *line,
                    crlf: *crlf,
                    final_break: *final_break,
                };
                out.extend(encode_base64(&data, layout));
            }
        }
    }
    if out.len() as u64 != recipe.size || BlobId::of(&out) != recipe.hash {
        return Err(BackupError::Corrupt(format!(
            "message {} rebuilt with the wrong content",
            recipe.hash
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_blobs_round_trip_and_refuse_damage() {
        let r = Recipe {
            size: 9,
            hash: BlobId::of(b"x"),
            segments: vec![
                Segment::Inline {
                    len: 3,
                    data: b"abc".to_vec(),
                },
                Segment::Raw {
                    chunks: vec![BlobId::of(b"y")],
                },
                Segment::Inline {
                    len: 2,
                    data: b"\r\n".to_vec(),
                },
            ],
        };
        let blob = r.encode().unwrap();
        assert!(blob.ends_with(b"abc\r\n"), "inline bytes are stored raw");
        assert_eq!(Recipe::decode(&blob).unwrap(), r);
        for cut in [0, 3, 7, blob.len() - 1] {
            let e = Recipe::decode(&blob[..cut]).unwrap_err().to_string();
            assert!(e.contains("recipe"), "{e}");
        }
        let mut longer = blob.clone();
        longer.push(b'!');
        assert!(Recipe::decode(&longer).is_err());
    }

    /// What a full parse says, for the single-part messages the fast path handles.
    fn full_ranges(raw: &[u8]) -> Vec<(usize, usize)> {
        let m = mail_parser::MessageParser::new()
            .with_mime_headers()
            .default_header_ignore()
            .parse(raw)
            .unwrap();
        m.parts
            .iter()
            .filter(|p| !matches!(p.body, mail_parser::PartType::Multipart(_)))
            .map(|p| (p.offset_body as usize, p.offset_end as usize))
            .filter(|(s, e)| e > s && e - s >= MIN_PART)
            .collect()
    }

    #[test]
    fn a_single_part_body_lies_where_a_full_parse_finds_it() {
        let body = "a line of text that makes the body long enough\n".repeat(40);
        let mut messages: Vec<Vec<u8>> = vec![
            format!("Subject: lf\nX-Folded: one\n two\n\n{body}").into_bytes(),
            format!("Subject: crlf\r\nContent-Type: text/plain\r\n\r\n{body}").into_bytes(),
            format!("\n{body}").into_bytes(),
            b"Subject: short\n\nhi".to_vec(),
        ];
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/format2/maildirs");
        for account in ["example.com/alice/Maildir", "example.org/bob/Maildir"] {
            for e in std::fs::read_dir(corpus.join(account).join("cur"))
                .unwrap()
                .flatten()
            {
                messages.push(std::fs::read(e.path()).unwrap());
            }
        }
        let mut single = 0;
        for raw in &messages {
            let fast = part_ranges(raw);
            let Some(head) = mail_parser::MessageParser::new()
                .with_mime_headers()
                .parse_headers(raw.as_slice())
            else {
                assert!(fast.is_empty(), "no headers: one raw piece, as before");
                continue;
            };
            let nested = head.root_part().content_type().is_some_and(|c| {
                c.ctype().eq_ignore_ascii_case("multipart")
                    || c.ctype().eq_ignore_ascii_case("message")
            });
            if !nested {
                single += 1;
                assert_eq!(
                    fast,
                    full_ranges(raw),
                    "{}",
                    String::from_utf8_lossy(&raw[..80.min(raw.len())])
                );
            }
        }
        assert!(single > 20, "{single}");
    }

    #[test]
    fn base64_layouts_round_trip_or_are_refused() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        for l in [
            Layout {
                line: 76,
                crlf: true,
                final_break: true,
            },
            Layout {
                line: 76,
                crlf: false,
                final_break: false,
            },
            Layout {
                line: 72,
                crlf: false,
                final_break: true,
            },
        ] {
            let enc = encode_base64(&data, l);
            assert_eq!(decode_exact(&enc), Some((data.clone(), l)));
        }
        // Uneven lines cannot be reproduced: kept raw.
        let mut odd = encode_base64(
            &data,
            Layout {
                line: 76,
                crlf: false,
                final_break: true,
            },
        );
        odd.insert(10, b'\n');
        assert_eq!(decode_exact(&odd), None);
        assert_eq!(decode_exact(b"not base64 at all!!\n"), None);
    }
}
