//! The parser never panics: real log lines mutated at random (bytes flipped, cut, spliced)
//! go through the whole pipeline. A deterministic generator keeps failures reproducible.

use mailfleet_report::{Hosts, LineParser, Options, classify_line, run};

/// xorshift64*: small, deterministic, good enough to scramble bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(line: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = line.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let at = rng.below(v.len() + 1);
                let from = rng.below(other.len() + 1);
                v.splice(at..at, other[from..].iter().copied());
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.insert(i, b"<>:[]=, \x00\xff"[rng.below(10)]);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.truncate(i);
                v.extend_from_slice(b": ");
            }
        }
    }
    v.retain(|b| *b != b'\n');
    v
}

#[test]
fn mutated_real_lines_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let text = std::fs::read(dir.join("infohtreasure-maillog")).unwrap();
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut hosts = Hosts::default();
    let mut corpus = Vec::new();
    for _ in 0..200_000 {
        let a = lines[rng.below(lines.len())];
        let b = lines[rng.below(lines.len())];
        let m = mutate(a, b, &mut rng);
        let _ = classify_line(&m, &mut hosts);
        if corpus.len() < 20_000 {
            corpus.extend_from_slice(&m);
            corpus.push(b'\n');
        }
    }
    // The same junk through the whole pipeline (aggregation included).
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("junk.log");
    std::fs::write(&p, &corpus).unwrap();
    let r = run(
        &[p],
        &Options {
            year: Some(2022),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.input.lines > 0);
    assert!(r.unparsed.total > 0);
}

/// The chunk parser reuses a repeated line header; on real logs in order (long runs of one
/// header) and on mutated lines it must classify exactly as a fresh parse does.
#[test]
fn reused_headers_classify_as_fresh_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut text = std::fs::read(dir.join("infohtreasure-maillog")).unwrap();
    text.extend(std::fs::read(dir.join("infohtreasure-mailog2")).unwrap());
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let mut rng = Rng(42);
    // Mutations of a line right after the line itself: a header that matches in part.
    let mutated: Vec<Vec<u8>> = lines
        .iter()
        .take(20_000)
        .map(|l| mutate(l, lines[rng.below(lines.len())], &mut rng))
        .collect();
    let mut all: Vec<&[u8]> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        all.push(l);
        if let Some(m) = mutated.get(i) {
            all.push(m);
        }
    }
    let mut cached = LineParser::new(None);
    let mut fresh = Hosts::default();
    let mut reused = 0;
    let mut prev: &[u8] = b"";
    for l in &all {
        let (a, b) = (cached.classify(l), classify_line(l, &mut fresh));
        assert_eq!(
            (a.stamp, &a.kind, a.host),
            (b.stamp, &b.kind, b.host),
            "{}",
            String::from_utf8_lossy(l)
        );
        reused += usize::from(l.len() > 40 && prev.len() > 40 && l[..40] == prev[..40]);
        prev = l;
    }
    assert!(reused > 1000, "the logs repeat headers: {reused}");
    assert_eq!(cached.into_names(), fresh.into_names());
}
