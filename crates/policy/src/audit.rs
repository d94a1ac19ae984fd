//! The weak-password audit: every account's stored hash is tried against the most common
//! passwords and against guesses built from its own address, on all cores. Hashes are checked
//! with maintained crates (sha1, sha2, pwhash for crypt and bcrypt, argon2); nothing here
//! hashes by hand.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use argon2::{PasswordHash, PasswordVerifier as _};
use base64::Engine as _;
use serde::Serialize;
use sha1::Digest as _;

/// The shipped list: the 10,000 most common passwords (see `data/README.md`).
pub const COMMON: &str = include_str!("../data/common-passwords.txt");

/// How to check a guess against one stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    /// `{PLAIN}`.
    Plain(String),
    /// `{SHA}`, `{SHA256}`, `{SHA512}` and their salted `{SSHA*}` forms: digest and salt.
    Digest {
        /// 1, 256 or 512.
        bits: u16,
        /// The stored digest.
        digest: Vec<u8>,
        /// The salt (empty for unsalted).
        salt: Vec<u8>,
    },
    /// crypt(3): `$1$`, `$5$`, `$6$`, `$2y$`/`$2b$` (bcrypt).
    Crypt(String),
    /// `$argon2i$`/`$argon2id$` (PHC string).
    Argon2(String),
    /// A scheme the audit cannot check (reported, not guessed).
    Unsupported(String),
}

fn digest_len(bits: u16) -> usize {
    match bits {
        1 => 20,
        256 => 32,
        _ => 64,
    }
}

fn decode(data: &str, len: usize) -> Option<Vec<u8>> {
    let data = data.trim();
    if data.len() == 2 * len && data.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (0..len)
            .map(|i| u8::from_str_radix(&data[2 * i..2 * i + 2], 16).ok())
            .collect();
    }
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

impl Verifier {
    /// Reads a stored hash: `{SCHEME}data` as Dovecot and OpenLDAP write it, or a bare
    /// crypt string.
    pub fn parse(stored: &str) -> Verifier {
        let (scheme, data) = match stored.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((s, d)) => (s.to_ascii_uppercase(), d),
            None if stored.starts_with('$') => ("CRYPT".to_string(), stored),
            None => return Verifier::Unsupported("no {SCHEME}".into()),
        };
        let salted = |bits: u16, salted: bool| {
            let len = digest_len(bits);
            match decode(data, if salted { 0 } else { len }) {
                Some(raw) if raw.len() == len && !salted => Verifier::Digest {
                    bits,
                    digest: raw,
                    salt: Vec::new(),
                },
                Some(raw) if salted && raw.len() > len => Verifier::Digest {
                    bits,
                    digest: raw[..len].to_vec(),
                    salt: raw[len..].to_vec(),
                },
                _ => Verifier::Unsupported(format!("{{{scheme}}} with a malformed value")),
            }
        };
        match scheme.as_str() {
            "PLAIN" | "CLEARTEXT" => Verifier::Plain(data.to_string()),
            "SHA" | "SHA1" => salted(1, false),
            "SSHA" => salted(1, true),
            "SHA256" => salted(256, false),
            "SSHA256" => salted(256, true),
            "SHA512" => salted(512, false),
            "SSHA512" => salted(512, true),
            "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "MD5-CRYPT" | "BLF-CRYPT"
                if data.starts_with("$argon2") =>
            {
                Verifier::Argon2(data.to_string())
            }
            "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "MD5-CRYPT" | "BLF-CRYPT" => {
                Verifier::Crypt(data.to_string())
            }
            "ARGON2I" | "ARGON2ID" => Verifier::Argon2(data.to_string()),
            other => Verifier::Unsupported(format!("{{{other}}}")),
        }
    }

    /// Whether `guess` is the password.
    pub fn matches(&self, guess: &str) -> bool {
        match self {
            Verifier::Plain(p) => p == guess,
            Verifier::Digest { bits, digest, salt } => {
                let computed: Vec<u8> = match bits {
                    1 => sha1::Sha1::new()
                        .chain_update(guess)
                        .chain_update(salt)
                        .finalize()
                        .to_vec(),
                    256 => sha2::Sha256::new()
                        .chain_update(guess)
                        .chain_update(salt)
                        .finalize()
                        .to_vec(),
                    _ => sha2::Sha512::new()
                        .chain_update(guess)
                        .chain_update(salt)
                        .finalize()
                        .to_vec(),
                };
                computed == *digest
            }
            Verifier::Crypt(h) => pwhash::unix::verify(guess, h),
            Verifier::Argon2(h) => PasswordHash::new(h).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(guess.as_bytes(), &parsed)
                    .is_ok()
            }),
            Verifier::Unsupported(_) => false,
        }
    }

    /// The scheme's name, for the report.
    pub fn name(&self) -> String {
        match self {
            Verifier::Plain(_) => "PLAIN".into(),
            Verifier::Digest { bits, salt, .. } => {
                let s = if salt.is_empty() { "" } else { "S" };
                match bits {
                    1 => format!("{s}SHA"),
                    b => format!("{s}SHA{b}"),
                }
            }
            Verifier::Crypt(h) => match h.get(..3) {
                Some("$1$") => "MD5-CRYPT".into(),
                Some("$5$") => "SHA256-CRYPT".into(),
                Some("$6$") => "SHA512-CRYPT".into(),
                _ => "BLF-CRYPT".into(),
            },
            Verifier::Argon2(_) => "ARGON2".into(),
            Verifier::Unsupported(s) => s.clone(),
        }
    }
}

/// Guesses built from the address: the local part and the domain's first label, as typed,
/// capitalised and upper-cased, alone and with the digits and years people add.
pub fn from_address(address: &str) -> Vec<String> {
    let (local, domain) = address.split_once('@').unwrap_or((address, ""));
    let label = domain.split('.').next().unwrap_or("");
    let mut words = vec![
        local.to_string(),
        label.to_string(),
        format!("{local}{label}"),
    ];
    words.extend(local.split(['.', '_', '-']).map(str::to_string));
    let mut out = vec![address.to_string()];
    for w in words.iter().filter(|w| w.len() >= 2) {
        let lower = w.to_lowercase();
        let mut cap = lower.clone();
        if let Some(f) = cap.get_mut(..1) {
            f.make_ascii_uppercase();
        }
        for base in [lower.clone(), cap, lower.to_uppercase()] {
            for suffix in [
                "", "1", "12", "123", "1234", "12345", "123456", "!", "01", "2023", "2024", "2025",
                "2026", "@123",
            ] {
                out.push(format!("{base}{suffix}"));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| !c.is_empty() && seen.insert(c.clone()));
    out
}

/// An account whose password was guessed.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The account.
    pub address: String,
    /// Its hash scheme.
    pub scheme: String,
    /// The password (only kept when asked to show it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Where the guess came from: `address` or `common list`.
    pub source: &'static str,
}

/// What the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Accounts checked.
    pub accounts: usize,
    /// Guesses tried in all.
    pub guesses: u64,
    /// Weak passwords found.
    pub weak: Vec<Finding>,
    /// Accounts whose hash could not be checked, with why.
    pub unchecked: Vec<(String, String)>,
}

/// One thread's findings and the accounts it could not check.
type WorkerResult = (Vec<Finding>, Vec<(String, String)>);

/// Audits the accounts `(address, stored hash)` against `wordlist` and their own addresses
/// on `threads` threads; `progress` counts accounts done.
pub fn audit(
    accounts: &[(String, String)],
    wordlist: &[String],
    threads: usize,
    show: bool,
    progress: &AtomicU64,
) -> Report {
    let next = AtomicUsize::new(0);
    let guesses = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let mut report = Report {
        accounts: accounts.len(),
        ..Report::default()
    };
    let results: Vec<WorkerResult> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut weak = Vec::new();
                    let mut unchecked = Vec::new();
                    while let Some((address, stored)) =
                        accounts.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let v = Verifier::parse(stored);
                        if let Verifier::Unsupported(why) = &v {
                            unchecked.push((address.clone(), why.clone()));
                            progress.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let own = from_address(address);
                        let tries = own
                            .iter()
                            .map(|g| (g, "address"))
                            .chain(wordlist.iter().map(|g| (g, "common list")));
                        let mut n = 0u64;
                        for (guess, source) in tries {
                            n += 1;
                            if v.matches(guess) {
                                weak.push(Finding {
                                    address: address.clone(),
                                    scheme: v.name(),
                                    password: show.then(|| guess.clone()),
                                    source,
                                });
                                break;
                            }
                        }
                        guesses.fetch_add(n, Ordering::Relaxed);
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    (weak, unchecked)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    stop.store(true, Ordering::Relaxed);
                    (Vec::new(), Vec::new())
                })
            })
            .collect()
    });
    for (w, u) in results {
        report.weak.extend(w);
        report.unchecked.extend(u);
    }
    report.weak.sort_by(|a, b| a.address.cmp(&b.address));
    report.unchecked.sort();
    report.guesses = guesses.load(Ordering::Relaxed);
    report
}

/// The shipped list, one password per line.
pub fn common_list() -> Vec<String> {
    COMMON
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn every_scheme_is_checked() {
        let salt = b"NaCl1234";
        let ssha = [sha1::Sha1::digest(b"letmein0salt").as_slice(), b"salt"].concat();
        let ssha512 = [
            sha2::Sha512::new()
                .chain_update("dragon")
                .chain_update(salt)
                .finalize()
                .as_slice(),
            salt,
        ]
        .concat();
        let cases = [
            ("{PLAIN}123456".to_string(), "123456"),
            (
                format!("{{SHA}}{}", b64(&sha1::Sha1::digest(b"password"))),
                "password",
            ),
            (format!("{{SSHA}}{}", b64(&ssha)), "letmein0"),
            (format!("{{SSHA512}}{}", b64(&ssha512)), "dragon"),
            (
                format!("{{SHA256}}{}", b64(&sha2::Sha256::digest(b"qwerty"))),
                "qwerty",
            ),
            (
                format!("{{CRYPT}}{}", pwhash::sha512_crypt::hash("monkey").unwrap()),
                "monkey",
            ),
            // Made by glibc's crypt(3): "shadow" with salt "saltsalt".
            (
                "{SHA256-CRYPT}$5$saltsalt$.5/POD0uD8y.KAuJrjD8XXtusZK1XXu53kFj31K.KkB".to_string(),
                "shadow",
            ),
            (
                format!(
                    "{{BLF-CRYPT}}{}",
                    pwhash::bcrypt::hash_with(
                        pwhash::bcrypt::BcryptSetup {
                            cost: Some(4),
                            variant: Some(pwhash::bcrypt::BcryptVariant::V2y),
                            ..Default::default()
                        },
                        "master"
                    )
                    .unwrap()
                ),
                "master",
            ),
        ];
        for (stored, pw) in &cases {
            let v = Verifier::parse(stored);
            assert!(v.matches(pw), "{stored} does not verify {pw}");
            assert!(!v.matches("not it"), "{stored} verifies anything");
        }
        // An Argon2 hash made by the argon2 crate itself.
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let params = argon2::Params::new(256, 1, 1, None).unwrap();
        let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let phc = a2
            .hash_password(b"football", &SaltString::from_b64("c29tZXNhbHQ").unwrap())
            .unwrap()
            .to_string();
        let v = Verifier::parse(&format!("{{ARGON2ID}}{phc}"));
        assert!(v.matches("football") && !v.matches("baseball"));
        assert!(matches!(
            Verifier::parse("{PBKDF2}$1$x"),
            Verifier::Unsupported(_)
        ));
        assert!(matches!(
            Verifier::parse("{SSHA}!!!"),
            Verifier::Unsupported(_)
        ));
        assert!(matches!(
            Verifier::parse("plaintext"),
            Verifier::Unsupported(_)
        ));
    }

    #[test]
    fn guesses_from_the_address() {
        let g = from_address("john.smith@acme.example");
        for want in [
            "john.smith",
            "John1234",
            "acme2026",
            "SMITH",
            "john.smithacme",
            "john.smith@acme.example",
        ] {
            assert!(g.iter().any(|x| x == want), "{want} missing");
        }
        assert_eq!(common_list().len(), 10_000);
        assert_eq!(common_list()[0], "123456");
    }

    #[test]
    fn an_audit_finds_the_weak_and_not_the_strong() {
        let accounts = vec![
            (
                "alice@example.com".to_string(),
                "{PLAIN}Alice2024".to_string(),
            ),
            (
                "bob@example.com".to_string(),
                format!("{{SHA}}{}", b64(&sha1::Sha1::digest(b"sunshine"))),
            ),
            (
                "carol@example.com".to_string(),
                "{PLAIN}correct horse battery staple".to_string(),
            ),
            ("dave@example.com".to_string(), "{PBKDF2}$1$abc".to_string()),
        ];
        let progress = AtomicU64::new(0);
        let r = audit(&accounts, &common_list(), 2, false, &progress);
        let weak: Vec<_> = r
            .weak
            .iter()
            .map(|f| (f.address.as_str(), f.source))
            .collect();
        assert_eq!(
            weak,
            [
                ("alice@example.com", "address"),
                ("bob@example.com", "common list")
            ]
        );
        assert!(
            r.weak.iter().all(|f| f.password.is_none()),
            "passwords hidden"
        );
        assert_eq!(r.unchecked.len(), 1);
        assert_eq!(progress.load(Ordering::Relaxed), 4);
        let shown = audit(&accounts[..1], &[], 1, true, &progress);
        assert_eq!(shown.weak[0].password.as_deref(), Some("Alice2024"));
    }
}
