//! How a server is reached, as the config says it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How mailfleet runs a server's own tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Access {
    /// On the machine mailfleet runs on.
    #[default]
    Local,
    /// Over SSH.
    Ssh(SshTarget),
}

impl Access {
    /// A short description for messages (`local`, `ssh root@10.0.0.5:22`).
    pub fn describe(&self) -> String {
        match self {
            Access::Local => "local".into(),
            Access::Ssh(t) => format!("ssh {t}"),
        }
    }
}

/// An SSH destination and the files to authenticate it and ourselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshTarget {
    /// The login user; `None` leaves it to the SSH client's config.
    pub user: Option<String>,
    /// Host name or address.
    pub host: String,
    /// Port; `None` leaves it to the SSH client's config (22).
    pub port: Option<u16>,
    /// The private key to log in with (only it is offered when given).
    pub identity_file: Option<PathBuf>,
    /// The `known_hosts` file the server's key must be in (the user's own when `None`).
    pub known_hosts: Option<PathBuf>,
    /// Jump hosts, in order (`ssh -J`).
    pub jump: Vec<String>,
}

impl SshTarget {
    /// Reads `[user@]host[:port]` (an IPv6 address in brackets: `[::1]:2222`); the message
    /// says what is wrong.
    pub fn parse(spec: &str) -> Result<SshTarget, String> {
        let spec = spec.trim();
        let (user, rest) = match spec.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("{spec:?} has an empty user before '@'")),
            None => (None, spec),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("{spec:?}: '[' without ']'"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(format!("{spec:?}: unexpected {after:?} after ']'")),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                Some(_) => {
                    return Err(format!(
                        "{spec:?}: put an IPv6 address in brackets ([::1]:22)"
                    ));
                }
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.starts_with('-') {
            return Err(format!("{spec:?} names no valid host"));
        }
        if user
            .as_deref()
            .is_some_and(|u| u.starts_with('-') || u.contains(char::is_whitespace))
        {
            return Err(format!("{spec:?} names no valid user"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("{spec:?}: port {p:?} is not 1-65535")),
            },
        };
        Ok(SshTarget {
            user,
            host: host.to_string(),
            port,
            identity_file: None,
            known_hosts: None,
            jump: Vec::new(),
        })
    }

    /// How `known_hosts` names this host (`host`, or `[host]:port` off port 22).
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_read_and_mistakes_named() {
        let t = SshTarget::parse("root@127.0.0.31:20022").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("root"), "127.0.0.31", Some(20022))
        );
        assert_eq!(t.known_hosts_name(), "[127.0.0.31]:20022");
        assert_eq!(t.to_string(), "root@127.0.0.31:20022");
        let t = SshTarget::parse("mx1.example.net").unwrap();
        assert_eq!((t.user, t.port), (None, None));
        let t = SshTarget::parse("ops@[::1]:2222").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(2222)));
        assert_eq!(t.to_string(), "ops@[::1]:2222");
        for bad in [
            "",
            "@host",
            "root@",
            "host:0",
            "host:99999",
            "::1:22",
            "-oProxyCommand=x",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
