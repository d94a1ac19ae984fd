//! A mount that stops answering (a FUSE filesystem whose statfs never returns, standing in
//! for a dead NFS server) is CRITICAL within the probe's deadline, and the probe still exits.
//! It runs in a mount namespace of its own, so no other test sees the hung mount.

use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) const HANGFS: &str = r#"
import errno, stat, sys, time
from fusepy import FUSE, FuseOSError, Operations

class Hang(Operations):
    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=(stat.S_IFDIR | 0o755), st_nlink=2)
        raise FuseOSError(errno.ENOENT)
    def readdir(self, path, fh):
        return [".", ".."]
    def statfs(self, path):
        time.sleep(3600)

FUSE(Hang(), sys.argv[1], foreground=True, fsname="hangfs", subtype="hangfs")
"#;

/// In a private mount namespace: mount the hanging filesystem, wait for it, run the probe,
/// print its JSON, then kill the filesystem (the namespace, and the mount, go with it).
const SCRIPT: &str = r#"
set -u
dir="$1"; mf="$2"
mkdir -p "$dir/mnt"
/usr/bin/python3 "$dir/hangfs.py" "$dir/mnt" 2>"$dir/hangfs.log" &
fs=$!
for i in $(seq 1 500); do grep -q " $dir/mnt fuse.hangfs " /proc/self/mounts && break; sleep 0.02; done
grep -q " $dir/mnt fuse.hangfs " /proc/self/mounts || { echo "hangfs did not mount: $(cat "$dir/hangfs.log")" >&2; kill -9 $fs; exit 9; }
start=$(date +%s%N)
"$mf" --config "$dir/mailfleet.toml" --json probe local > "$dir/out.json"
echo $(( ($(date +%s%N) - start) / 1000000 )) > "$dir/ms"
kill -9 $fs
umount -l "$dir/mnt" 2>/dev/null
exit 0
"#;

/// A probe run in a private mount namespace by `script` (given the directory and the binary):
/// its outcomes, how long the probe took (ms), and the directory the mounts were under.
pub(crate) struct NamespaceRun {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ms: u64,
    pub(crate) outcomes: Vec<serde_json::Value>,
}

/// Runs `script` under `unshare` with the hanging filesystem and a 2 s probe deadline beside it.
pub(crate) fn run_in_mount_namespace(script: &str) -> NamespaceRun {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("hangfs.py"), HANGFS).unwrap();
    std::fs::write(d.join("run.sh"), script).unwrap();
    std::fs::write(d.join("mailfleet.toml"), "[probe]\ntimeout_secs = 2\n").unwrap();
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh"])
        .arg(d.join("run.sh"))
        .arg(d)
        .arg(env!("CARGO_BIN_EXE_mailfleet"))
        .output()
        .expect("unshare (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let ms: u64 = std::fs::read_to_string(d.join("ms"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let outcomes =
        serde_json::from_str(&std::fs::read_to_string(d.join("out.json")).unwrap()).unwrap();
    NamespaceRun { dir, ms, outcomes }
}

#[test]
fn a_hung_mount_is_critical_and_the_probe_still_exits() {
    let NamespaceRun { dir, ms, outcomes } = run_in_mount_namespace(SCRIPT);
    let d = dir.path();
    // The product's promise: a mount that does not answer is given up at the deadline
    // (timeout_secs = 2). Margin: 2 s for the process and the other checks' 200 ms sample on
    // a loaded machine.
    assert!(ms < 2000 + 2000, "the probe took {ms} ms");
    let mnt = format!("disk:{}", d.join("mnt").display());
    let hung = outcomes
        .iter()
        .find(|o| o["check"] == mnt.as_str())
        .unwrap_or_else(|| panic!("no {mnt} in {outcomes:#?}"));
    assert_eq!(hung["state"], "CRITICAL", "{hung:#}");
    assert!(
        hung["message"]
            .as_str()
            .unwrap()
            .contains("no answer within 2.0 s"),
        "{hung:#}"
    );
    let root = outcomes
        .iter()
        .find(|o| o["check"] == "disk:/")
        .expect("the root filesystem is still checked");
    assert_ne!(root["state"], "UNKNOWN");
}
