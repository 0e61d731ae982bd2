//! Rule lists moving between hosts: blocker's own JSON export, and plain
//! address lists such as published blocklists (one address or CIDR per line,
//! `#` or `;` comments, e.g. FireHOL or Spamhaus DROP).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{addr, rule::List};

/// Format tag of [`Export`].
pub const FORMAT: &str = "blocker-rules";

/// `blocker export --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub format: String,
    pub version: u32,
    pub exported_at: String,
    pub rules: Vec<ExportedRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedRule {
    pub list: List,
    #[serde(with = "crate::council::net_serde")]
    pub prefix: IpNet,
    /// RFC 3339 UTC; null for permanent rules.
    pub expires_at: Option<String>,
    pub reason: String,
    pub source: String,
}

/// A line of a plain list that is not an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub text: String,
    pub error: String,
}

/// Parses a plain list: the prefixes, and every line that is neither a
/// prefix, a comment nor blank. Duplicates are dropped.
pub fn parse_plain(text: &str) -> (Vec<IpNet>, Vec<LineError>) {
    let mut nets = Vec::new();
    // A set beside the list keeps the first-seen order and makes the
    // duplicate check O(1): `Vec::contains` here made a million-line list
    // quadratic (hours; issue 14).
    let mut seen = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut tokens = line.split_whitespace();
        let first = tokens.next().unwrap_or("");
        if tokens.next().is_some() {
            errors.push(LineError {
                line: i + 1,
                text: crate::text::sanitize_text(raw).chars().take(80).collect(),
                error: "more than one value on the line (one address or CIDR per line)".into(),
            });
            continue;
        }
        match addr::parse_net(first) {
            Ok(n) => {
                if seen.insert(n) {
                    nets.push(n);
                }
            }
            Err(e) => errors.push(LineError {
                line: i + 1,
                text: crate::text::sanitize_text(raw).chars().take(80).collect(),
                error: e.to_string(),
            }),
        }
    }
    (nets, errors)
}

/// Whether `text` looks like blocker's JSON export rather than a plain list.
pub fn is_export(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses blocker's JSON export, checking the format tag and version.
pub fn parse_export(text: &str) -> Result<Export, String> {
    let e: Export = serde_json::from_str(text).map_err(|e| format!("not a blocker export: {e}"))?;
    if e.format != FORMAT {
        return Err(format!("format is {:?}, expected {FORMAT:?}", e.format));
    }
    if e.version != 1 {
        return Err(format!(
            "export version {} is not supported (this blocker reads 1)",
            e.version
        ));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lists_with_comments() {
        let text = "# FireHOL-style header\n\
                    198.51.100.7\n\
                    203.0.113.0/24 ; SBL123 (Spamhaus DROP style)\n\
                    \n\
                    2001:db8::/48 # inline comment\n\
                    198.51.100.7\n\
                    10.0.0.5/24\n\
                    not-an-ip\n\
                    1.2.3.4 5.6.7.8\n";
        let (nets, errors) = parse_plain(text);
        let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["198.51.100.7/32", "203.0.113.0/24", "2001:db8::/48"]);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [7, 8, 9]);
        assert!(errors[0].error.contains("did you mean 10.0.0.0/24"));
        assert!(errors[2].error.contains("one address or CIDR per line"));
    }

    #[test]
    fn export_round_trip_and_checks() {
        let e = Export {
            format: FORMAT.into(),
            version: 1,
            exported_at: "2026-11-21T12:00:00Z".into(),
            rules: vec![ExportedRule {
                list: List::Block,
                prefix: "198.51.100.0/24".parse().unwrap(),
                expires_at: None,
                reason: "scan".into(),
                source: "cli".into(),
            }],
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(is_export(&text));
        assert_eq!(parse_export(&text).unwrap(), e);
        assert!(parse_export(&text.replace("blocker-rules", "other")).is_err());
        assert!(parse_export(&text.replace("\"version\":1", "\"version\":9")).is_err());
        assert!(parse_export("{\"format\":\"blocker-rules\"}").is_err());
        assert!(!is_export("198.51.100.7\n"));
    }
}
