//! Mail addresses as the directory stores them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not an acceptable mailbox address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed address {input:?}: {reason}")]
pub struct AddressError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A mailbox address, normalised to lower case (`local@domain`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

impl Address {
    /// Parses and normalises an address; mailbox names are compared case-insensitively
    /// everywhere in the stack (Postfix maps, Dovecot, LDAP), so they are stored lower case.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let fail = |reason| AddressError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim().to_ascii_lowercase();
        if s.len() > 254 {
            return Err(fail("longer than 254 characters"));
        }
        let (local, domain) = s.split_once('@').ok_or_else(|| fail("no '@'"))?;
        if domain.contains('@') {
            return Err(fail("more than one '@'"));
        }
        check_local(local).map_err(fail)?;
        check_domain(domain).map_err(fail)?;
        Ok(Address(s))
    }

    /// The part before the `@`.
    pub fn local(&self) -> &str {
        self.0.split_once('@').map_or("", |(l, _)| l)
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, d)| d)
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_local(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("empty local part");
    }
    if local.len() > 64 {
        return Err("local part longer than 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("misplaced '.' in local part");
    }
    // RFC 5322 atext: anything else would need quoting, which no mail store here handles.
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if !local.chars().all(atext) {
        return Err("local part has a character that needs quoting");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("empty domain");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("domain has no '.'");
    }
    for label in labels {
        if label.is_empty() || label.len() > 63 {
            return Err("empty or over-long domain label");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("domain label starts or ends with '-'");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("domain has a character other than letters, digits, '-' and '.'");
        }
    }
    Ok(())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Address::parse(&s)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.0
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_space() {
        let a = Address::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "alice@example.com");
        assert_eq!(a.local(), "alice");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@example.com",
            "al ice@example.com",
            "alice@localhost",
            "alice@-x.com",
            ".alice@example.com",
            "al..ice@example.com",
            "alice@exa_mple.com",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
