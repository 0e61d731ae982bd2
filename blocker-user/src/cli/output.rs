//! Aligned tables for people, JSON for scripts.

use serde::Serialize;

/// Renders rows under headers, columns separated by two spaces and padded
/// to the widest cell. Numeric-looking columns are right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..cols)
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i)
                        .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
                })
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut parts = Vec::with_capacity(cols);
        for (i, cell) in cells.iter().enumerate() {
            let pad = width[i] - cell.chars().count();
            let last = i + 1 == cols;
            parts.push(if numeric[i] {
                format!("{}{cell}", " ".repeat(pad))
            } else if last {
                (*cell).to_string()
            } else {
                format!("{cell}{}", " ".repeat(pad))
            });
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    use std::io::Write as _;
    // Streamed through a buffer: an export of a million rules is 200 MB of
    // JSON, never held as one string.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = table(
            &["ADDRESS", "DROPS"],
            &[
                vec!["198.51.100.7".into(), "5".into()],
                vec!["2001:db8::1".into(), "1234".into()],
            ],
        );
        assert_eq!(
            t,
            "ADDRESS       DROPS\n198.51.100.7      5\n2001:db8::1    1234\n"
        );
    }

    #[test]
    fn empty_table_has_headers() {
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }
}
