//! CSV import: a header naming `address`, `server` and optionally `password_hash`.

use super::{ImportError, Record};

pub(super) fn parse(text: &str, file: &str) -> Result<Vec<Record>, ImportError> {
    let syntax = |line: usize, message: String| ImportError::Syntax {
        file: file.to_string(),
        line,
        message,
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| syntax(1, e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(address), Some(server)) = (column("address"), column("server")) else {
        return Err(syntax(
            1,
            format!(
                "header must name the columns address and server (and optionally password_hash), found {:?}",
                headers.iter().collect::<Vec<_>>()
            ),
        ));
    };
    let hash = column("password_hash");
    if let Some(extra) = headers.iter().find(|h| {
        !["address", "server", "password_hash"]
            .iter()
            .any(|k| h.eq_ignore_ascii_case(k))
    }) {
        return Err(syntax(1, format!("unknown column {extra:?}")));
    }
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            syntax(line, e.to_string())
        })?;
        let line = row.position().map_or(0, |p| p.line() as usize);
        let field = |i: usize| row.get(i).unwrap_or("").to_string();
        out.push(Record {
            line,
            address: field(address),
            server: field(server),
            password_hash: hash.map(field).filter(|h| !h.is_empty()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_with_line_numbers() {
        let text =
            "address,server,password_hash\n# a comment\na@x.com, s1 ,{CRYPT}x\nb@x.com,s2,\n";
        let r = parse(text, "f.csv").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].server, "s1");
        assert_eq!(r[0].password_hash.as_deref(), Some("{CRYPT}x"));
        assert_eq!(r[1].line, 4);
        assert_eq!(r[1].password_hash, None);
    }

    #[test]
    fn rejects_bad_header_and_ragged_rows() {
        assert!(parse("mail,host\na@x.com,s1\n", "f").is_err());
        let e = parse("address,server\na@x.com,s1,extra\n", "f").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
