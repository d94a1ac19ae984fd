//! Who is logged in: sessions (a random token in an `HttpOnly`, `Secure`, `SameSite=Strict`
//! cookie, each with its own CSRF token, ending after `[serve] session_lifetime`), and the
//! brake on guessing (failed logins counted per client address and per account; from the
//! fifth in a row each further attempt waits twice as long as the one before, up to 15 min).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "mf_session";
/// Failed logins allowed before the brake.
const FREE_FAILURES: u32 = 5;
/// The longest wait the brake imposes.
const MAX_WAIT: Duration = Duration::from_secs(900);
/// Sessions kept at most (anonymous ones for the login form included): the oldest go first.
const MAX_SESSIONS: usize = 10_000;

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The operator, once logged in (`None`: the login form's session).
    pub operator: Option<String>,
    /// The token every form of this session carries.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
}

/// A random token (256 bits, hex).
pub fn token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The Argon2id hash (PHC string) of `password`, with a fresh salt.
pub fn hash(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher as _, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing: {e}"))
}

/// A hash nobody's password matches, verified in place of an unknown name's: a login for a
/// name that does not exist costs as long as one for a name that does.
const NOBODY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Y2hlY2tjaGVja2NoZWNrY2hlY2tjaGVja2NoZWNrY2g";

/// Whether `password` matches `hash` (`None`: an unknown name, never matching). The
/// verification runs either way, so timing does not tell names apart.
pub fn verify(hash: Option<&str>, password: &str) -> bool {
    use argon2::PasswordVerifier as _;
    let matched = argon2::PasswordHash::new(hash.unwrap_or(NOBODY)).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    hash.is_some() && matched
}

/// Compares two tokens in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The sessions and the failed logins.
#[derive(Debug, Default)]
pub struct Gate {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Gate {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // Every change is one insert or removal: a panic elsewhere leaves the map whole.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session (anonymous, or `operator`'s) for `lifetime`; its cookie token.
    pub fn open(
        &self,
        operator: Option<String>,
        lifetime: Duration,
    ) -> Result<(String, Session), String> {
        let id = token()?;
        let session = Session {
            operator,
            csrf: token()?,
            expires: Instant::now() + lifetime,
        };
        let mut all = self.sessions();
        let now = Instant::now();
        all.retain(|_, s| s.expires > now);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The live session of cookie token `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut all = self.sessions();
        match all.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                all.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `id`.
    pub fn close(&self, id: &str) {
        self.sessions().remove(id);
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `keys` (the client's address, the account) must still wait before another try.
    pub fn wait(&self, keys: &[String]) -> Option<Duration> {
        let all = self.failures();
        keys.iter()
            .filter_map(|k| {
                let (n, last) = all.get(k)?;
                let n = n.checked_sub(FREE_FAILURES)?;
                let wait = Duration::from_secs(1u64 << n.min(10)).min(MAX_WAIT);
                wait.checked_sub(last.elapsed()).filter(|w| !w.is_zero())
            })
            .max()
    }

    /// Counts a failed login against `keys`.
    pub fn failed(&self, keys: &[String]) {
        let mut all = self.failures();
        let now = Instant::now();
        // A quiet quarter of an hour forgives.
        all.retain(|_, (_, last)| now.duration_since(*last) < MAX_WAIT);
        for k in keys {
            let e = all.entry(k.clone()).or_insert((0, now));
            e.0 += 1;
            e.1 = now;
        }
    }

    /// Forgets the failures of `keys` (a login that succeeded).
    pub fn succeeded(&self, keys: &[String]) {
        let mut all = self.failures();
        for k in keys {
            all.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_brake_starts_after_five_failures_and_sessions_expire() {
        let g = Gate::default();
        let keys = vec!["ip 127.0.0.1".to_string(), "account admin".to_string()];
        for _ in 0..5 {
            assert_eq!(g.wait(&keys), None);
            g.failed(&keys);
        }
        assert!(g.wait(&keys).is_some());
        assert!(g.wait(&["ip 127.0.0.2".to_string()]).is_none());
        g.succeeded(&keys);
        assert_eq!(g.wait(&keys), None);
        let (id, _) = g
            .open(Some("admin".into()), Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(g.get(&id).is_none());
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn an_unknown_name_is_verified_against_a_real_hash_and_never_matches() {
        // Parsed, so the stand-in verification really runs.
        assert!(argon2::PasswordHash::new(NOBODY).is_ok());
        let h = hash("s3cret").unwrap();
        assert!(verify(Some(&h), "s3cret"));
        assert!(!verify(Some(&h), "wrong"));
        assert!(!verify(None, "s3cret"));
        assert!(!verify(None, ""));
    }
}
