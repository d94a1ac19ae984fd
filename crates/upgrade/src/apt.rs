//! apt on a server, through its access: the command lines (with the server's package root,
//! when its packages do not live under `/`), and what their output says (the `Inst` lines of a
//! simulation, the dependencies of a version).

use std::collections::BTreeMap;

use mailfleet_core::Server;

/// `tool` (`apt-get`, `apt-cache`) with `args`, as it runs on `server`.
pub fn argv(server: &Server, tool: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec![tool.to_string()];
    if let Some(root) = &server.package_root {
        let r = root.display();
        for o in [
            format!("Dir={r}"),
            format!("Dir::State::status={r}/var/lib/dpkg/status"),
            format!("DPkg::Options::=--root={r}"),
            "DPkg::Options::=--force-not-root".to_string(),
            format!("DPkg::Options::=--log={r}/var/log/dpkg.log"),
            // The root's lists and archives belong to root, not apt's sandbox user.
            "APT::Sandbox::User=root".to_string(),
        ] {
            v.push("-o".into());
            v.push(o);
        }
    }
    v.extend(args.iter().map(|a| (*a).to_string()));
    v
}

/// `dpkg` with `args`, as it runs on `server` (in its package root, if it has one).
pub fn dpkg_argv(server: &Server, args: &[&str]) -> Vec<String> {
    let mut v = vec!["dpkg".to_string()];
    if let Some(root) = &server.package_root {
        v.push(format!("--root={}", root.display()));
        v.push("--force-not-root".into());
    }
    v.extend(args.iter().map(|a| (*a).to_string()));
    v
}

/// A package a simulated upgrade would install.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inst {
    /// The package.
    pub package: String,
    /// Its installed version, if any.
    pub from: Option<String>,
    /// The version it would get.
    pub to: String,
}

/// The `Inst` lines of `apt-get -s` output: `Inst NAME [OLD] (NEW ORIGIN [ARCH])`.
pub fn parse_inst(out: &str) -> Vec<Inst> {
    out.lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|rest| {
            let (package, rest) = rest.split_once(' ')?;
            let rest = rest.trim_start();
            let (from, rest) = match rest.strip_prefix('[') {
                Some(r) => {
                    let (v, r) = r.split_once(']')?;
                    (Some(v.to_string()), r.trim_start())
                }
                None => (None, rest),
            };
            let to = rest.strip_prefix('(')?.split_whitespace().next()?;
            Some(Inst {
                package: package.to_string(),
                from,
                to: to.trim_end_matches(')').to_string(),
            })
        })
        .collect()
}

/// The packages each `(package, version)` of `apt-cache show` output depends on (`Depends`
/// and `Pre-Depends`, alternatives included, versions and architectures left out).
pub fn parse_depends(out: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut all = BTreeMap::new();
    for stanza in out.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(str::trim)
        };
        let (Some(p), Some(v)) = (field("Package"), field("Version")) else {
            continue;
        };
        let deps: Vec<String> = [field("Depends"), field("Pre-Depends")]
            .into_iter()
            .flatten()
            .flat_map(|d| d.split([',', '|']))
            .filter_map(|d| {
                let name = d.trim().split([' ', '(']).next()?;
                let name = name.split(':').next()?;
                (!name.is_empty()).then(|| name.to_string())
            })
            .collect();
        all.insert((p.to_string(), v.to_string()), deps);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulation_and_its_dependencies_are_read() {
        let sim = "Reading package lists...\nThe following packages will be upgraded:\n  mf-dovecot mf-plugin\nInst mf-plugin [1.0] (1.1 localhost [all]) []\nInst mf-dovecot [1.0] (1.1 localhost [all])\nInst newpkg (2.0-1 Debian:12/stable [amd64])\nConf mf-plugin (1.1 localhost [all])\n";
        let inst = parse_inst(sim);
        assert_eq!(inst.len(), 3);
        assert_eq!(
            inst[0],
            Inst {
                package: "mf-plugin".into(),
                from: Some("1.0".into()),
                to: "1.1".into()
            }
        );
        assert_eq!(inst[2].from, None);
        assert_eq!(inst[2].to, "2.0-1");
        let show = "Package: mf-plugin\nVersion: 1.1\nDepends: mf-dovecot (= 1.1), libc6:any (>= 2.3) | musl\nPre-Depends: dpkg\n\nPackage: other\nVersion: 3\n";
        let d = parse_depends(show);
        assert_eq!(
            d[&("mf-plugin".to_string(), "1.1".to_string())],
            ["mf-dovecot", "libc6", "musl", "dpkg"]
        );
        assert!(d[&("other".to_string(), "3".to_string())].is_empty());
    }
}
