//! Helpers: run pflogsumm and read its grand totals.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use mailfleet_report::pflogsumm::{Shown, grand_totals};

/// pflogsumm's grand totals on these files, by our field names.
pub(crate) fn pflogsumm(files: &[&Path]) -> BTreeMap<&'static str, Shown> {
    let out = std::process::Command::new("pflogsumm")
        .args(files)
        .output()
        .expect("pflogsumm runs (scripts/install-stack installs it)");
    assert!(
        out.status.success(),
        "pflogsumm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    grand_totals(&String::from_utf8_lossy(&out.stdout))
}

/// Our totals as a map of field to value.
pub(crate) fn ours(t: &mailfleet_report::report::Totals) -> HashMap<String, u64> {
    let v = serde_json::to_value(t).expect("totals serialise");
    v.as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("integer field")))
        .collect()
}
