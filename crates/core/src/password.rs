//! Password hashes in the `{SCHEME}data` form that LDAP `userPassword` and Dovecot share.

/// Why a string is not accepted as a password hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// No `{SCHEME}` prefix: probably a plaintext password given by mistake.
    #[error(
        "password hash must start with a scheme such as {{CRYPT}} or {{SSHA}} (a plaintext password is never stored)"
    )]
    NoScheme,
    /// A scheme mailfleet does not know.
    #[error("unknown password hash scheme {0:?}")]
    UnknownScheme(String),
    /// Characters that would break a passwd-file or LDIF line.
    #[error("password hash contains a ':' or a control character")]
    BadCharacter,
}

const SCHEMES: &[&str] = &[
    "CRYPT",
    "SHA512-CRYPT",
    "SHA256-CRYPT",
    "BLF-CRYPT",
    "ARGON2I",
    "ARGON2ID",
    "SSHA",
    "SSHA256",
    "SSHA512",
    "SHA",
    "SHA256",
    "SHA512",
    "PBKDF2",
    "MD5-CRYPT",
    "PLAIN",
];

/// The scheme of a `{SCHEME}data` hash.
pub fn scheme(hash: &str) -> Option<&str> {
    let rest = hash.strip_prefix('{')?;
    rest.split_once('}').map(|(s, _)| s)
}

/// Checks a hash given by an admin or an import file.
pub fn check(hash: &str) -> Result<(), HashError> {
    let s = scheme(hash).ok_or(HashError::NoScheme)?;
    if !SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(s)) {
        return Err(HashError::UnknownScheme(s.to_string()));
    }
    if hash.contains(':') || hash.chars().any(char::is_control) {
        return Err(HashError::BadCharacter);
    }
    Ok(())
}

/// Hashes a password as `{CRYPT}$6$...` (SHA-512 crypt), which slapd and Dovecot both read.
pub fn hash(password: &str) -> Result<String, HashError> {
    pwhash::sha512_crypt::hash(password)
        .map(|h| format!("{{CRYPT}}{h}"))
        .map_err(|_| HashError::BadCharacter)
}

/// Whether `password` matches a `{CRYPT}` hash; other schemes are not verified here.
pub fn verify(password: &str, hash: &str) -> bool {
    match hash.strip_prefix("{CRYPT}") {
        Some(h) => pwhash::unix::verify(password, h),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("{CRYPT}$6$"));
        check(&h).unwrap();
        assert!(verify("s3cret", &h));
        assert!(!verify("other", &h));
    }

    #[test]
    fn rejects_plaintext_and_unknown() {
        assert_eq!(check("hunter2"), Err(HashError::NoScheme));
        assert!(matches!(
            check("{ROT13}x"),
            Err(HashError::UnknownScheme(_))
        ));
        assert_eq!(check("{SSHA}a:b"), Err(HashError::BadCharacter));
    }
}
