//! Mail templates an admin writes (notices to users): `{name}` placeholders, and a first line
//! `Subject: ...` that becomes the subject.

/// `template` with each `{name}` of `values` replaced; (subject, body), the subject from a
/// first `Subject: ` line, else `default_subject`.
pub fn fill(template: &str, values: &[(&str, &str)], default_subject: &str) -> (String, String) {
    let mut filled = template.to_string();
    for (name, value) in values {
        filled = filled.replace(&format!("{{{name}}}"), value);
    }
    match filled.split_once('\n') {
        Some((first, rest)) if first.starts_with("Subject: ") => (
            first.trim_start_matches("Subject: ").trim().to_string(),
            rest.trim_start_matches('\n').to_string(),
        ),
        _ => (default_subject.to_string(), filled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_the_subject_line() {
        let (s, b) = fill(
            "Subject: For {address}\n\n{address} at {when}; {unknown}\n",
            &[("address", "a@x"), ("when", "02:00")],
            "default",
        );
        assert_eq!(s, "For a@x");
        assert_eq!(b, "a@x at 02:00; {unknown}\n");
        assert_eq!(fill("no subject", &[], "default").0, "default");
    }
}
