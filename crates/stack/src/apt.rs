//! Packages for the demo's servers: each server has its own package root (its own dpkg
//! database and apt state under `BASE/SERVER/packages`), so that an update on one demo server
//! leaves the others as they were, as on separate hosts; all of them read one local
//! repository (`BASE/apt-repo`, a `file:` source) that tests fill with packages made by
//! `dpkg-deb` and indexed by `apt-ftparchive`.

use std::path::{Path, PathBuf};

use crate::StackError;

fn io(path: &Path) -> impl Fn(std::io::Error) -> StackError + '_ {
    move |e| StackError::State(format!("{}: {e}", path.display()))
}

/// Makes `root` a package root reading `repo`.
pub fn prepare_root(root: &Path, repo: &Path) -> Result<(), StackError> {
    for d in [
        "etc/apt/sources.list.d",
        "etc/apt/preferences.d",
        "etc/apt/apt.conf.d",
        "etc/apt/trusted.gpg.d",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
    ] {
        let d = root.join(d);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
    }
    let status = root.join("var/lib/dpkg/status");
    if !status.exists() {
        std::fs::write(&status, "").map_err(io(&status))?;
    }
    let sources = root.join("etc/apt/sources.list");
    std::fs::write(
        &sources,
        format!("deb [trusted=yes] file:{} ./\n", repo.display()),
    )
    .map_err(io(&sources))
}

/// Makes `repo` an empty repository.
pub fn prepare_repo(repo: &Path) -> Result<(), StackError> {
    std::fs::create_dir_all(repo).map_err(io(repo))?;
    let index = repo.join("Packages");
    if !index.exists() {
        std::fs::write(&index, "").map_err(io(&index))?;
    }
    Ok(())
}

/// A package to build.
#[derive(Debug, Clone)]
pub struct Package<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its `Depends:` field, if any.
    pub depends: Option<&'a str>,
    /// Files it installs: a path below the root, and the content.
    pub files: Vec<(&'a str, String)>,
    /// Programs it installs (mode 0755): a path below the root, and the bytes.
    pub programs: Vec<(&'a str, Vec<u8>)>,
}

/// Builds `p` into `repo` with `dpkg-deb`; the `.deb` file.
pub fn build(repo: &Path, p: &Package<'_>) -> Result<PathBuf, StackError> {
    let work = tempfile::tempdir().map_err(|e| StackError::State(e.to_string()))?;
    let tree = work.path().join("tree");
    let debian = tree.join("DEBIAN");
    std::fs::create_dir_all(&debian).map_err(io(&debian))?;
    let mut control = format!(
        "Package: {}\nVersion: {}\nArchitecture: all\nMaintainer: mailfleet tests <tests@example.com>\nDescription: {} for the upgrade tests\n",
        p.name, p.version, p.name
    );
    if let Some(d) = p.depends {
        control.push_str(&format!("Depends: {d}\n"));
    }
    std::fs::write(debian.join("control"), control).map_err(io(&debian))?;
    for (path, content) in &p.files {
        let f = tree.join(path.trim_start_matches('/'));
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&f, content).map_err(io(&f))?;
    }
    for (path, bytes) in &p.programs {
        use std::os::unix::fs::PermissionsExt;
        let f = tree.join(path.trim_start_matches('/'));
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&f, bytes).map_err(io(&f))?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).map_err(io(&f))?;
    }
    let deb = repo.join(format!("{}_{}_all.deb", p.name, p.version));
    crate::process::run(
        std::process::Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&tree)
            .arg(&deb),
    )?;
    Ok(deb)
}

/// Indexes `repo` (`apt-ftparchive packages`), publishing what was built into it.
pub fn index(repo: &Path) -> Result<(), StackError> {
    let out = std::process::Command::new("apt-ftparchive")
        .args(["packages", "."])
        .current_dir(repo)
        .output()
        .map_err(|e| {
            StackError::State(format!("apt-ftparchive (apt-get install apt-utils): {e}"))
        })?;
    if !out.status.success() {
        return Err(StackError::State(format!(
            "apt-ftparchive: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let index = repo.join("Packages");
    std::fs::write(&index, out.stdout).map_err(io(&index))
}
