//! The parser never panics: real log lines mutated at random (bytes flipped, cut, spliced)
//! go through the whole pipeline. A deterministic generator keeps failures reproducible.

use mailfleet_report::{Hosts, Options, classify_line, run};

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
