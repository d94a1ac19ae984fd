//! Package holds: the packages the fleet patches itself (through `upgrade run`) kept out of
//! the OS's automatic updates, written in each tool's own syntax. Patterns are globs (`*` any
//! run of characters, `?` one); unattended-upgrades reads regular expressions matched only at
//! the start (its bug #290), so each becomes one anchored at both ends.

use serde::Serialize;

/// Which tool's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    /// unattended-upgrades: `Unattended-Upgrade::Package-Blacklist` (regular expressions).
    Apt,
    /// dnf-automatic: `excludepkgs` (globs).
    Dnf,
    /// yum-cron: `exclude` (globs).
    Yum,
}

/// A glob as a regular expression anchored at both ends.
pub fn regex(glob: &str) -> String {
    let mut out = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c if "\\.+()[]{}|^$".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

/// Whether `package` matches `glob`.
pub fn matches(glob: &str, package: &str) -> bool {
    fn go(g: &[char], p: &[char]) -> bool {
        match (g.first(), p.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&g[1..], p) || (!p.is_empty() && go(g, &p[1..])),
            (Some('?'), Some(_)) => go(&g[1..], &p[1..]),
            (Some(a), Some(b)) if a == b => go(&g[1..], &p[1..]),
            _ => false,
        }
    }
    let (g, p): (Vec<char>, Vec<char>) = (glob.chars().collect(), package.chars().collect());
    go(&g, &p)
}

/// The holds for `patterns` in `format`'s syntax, as a file snippet.
pub fn render(format: Format, patterns: &[String]) -> String {
    match format {
        Format::Apt => {
            let mut s = String::from(
                "// Packages mailfleet upgrades itself, in order (mailfleet upgrade holds).\nUnattended-Upgrade::Package-Blacklist {\n",
            );
            for p in patterns {
                s.push_str(&format!("    \"{}\";\n", regex(p)));
            }
            s.push_str("};\n");
            s
        }
        Format::Dnf => format!(
            "# Packages mailfleet upgrades itself, in order (mailfleet upgrade holds).\n[base]\nexcludepkgs = {}\n",
            patterns.join(",")
        ),
        Format::Yum => format!(
            "# Packages mailfleet upgrades itself, in order (mailfleet upgrade holds).\n[base]\nexclude = {}\n",
            patterns.join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_regexes_anchored_at_both_ends() {
        assert_eq!(regex("zimbra-*"), "^zimbra-.*$");
        assert_eq!(regex("slapd"), "^slapd$");
        assert_eq!(regex("libstdc++6"), "^libstdc\\+\\+6$");
        assert_eq!(regex("dovecot-?map*"), "^dovecot-.map.*$");
        assert!(matches("zimbra-*", "zimbra-store"));
        assert!(matches("slapd", "slapd"));
        // Anchored: a package that merely starts like a held one is not held.
        assert!(!matches("slapd", "slapd-smbk5pwd"));
        assert!(matches("dovecot-*", "dovecot-imapd"));
        assert!(!matches("dovecot-*", "dovecot"));
        assert!(matches("postfix*", "postfix"));
    }

    #[test]
    fn each_tool_gets_its_own_syntax() {
        let p = vec!["zimbra-*".to_string(), "slapd".to_string()];
        let apt = render(Format::Apt, &p);
        assert!(apt.contains("Unattended-Upgrade::Package-Blacklist {\n    \"^zimbra-.*$\";\n    \"^slapd$\";\n};"), "{apt}");
        assert!(render(Format::Dnf, &p).contains("excludepkgs = zimbra-*,slapd\n"));
        assert!(render(Format::Yum, &p).contains("exclude = zimbra-* slapd\n"));
    }
}
