//! The configuration reference (`docs/config.md`), generated from the code.
//!
//! One source of truth: the annotated default file `blocker.toml` (embedded
//! as [`DEFAULT_TOML`]) carries each key's documentation and default value.
//! The parser is checked against it from both sides: the file must parse to
//! [`Config::default`] (a unit test in `config`), every key the defaults
//! serialize to must appear in the file and every key in the file must be
//! one the parser knows ([`keys`] fails otherwise). The type column is asked
//! of the parser itself: each key is set to values of the wrong type and the
//! deserializer's own "expected ..." message names the type (enum variants
//! included), so a changed field type changes the reference.

use std::collections::{BTreeMap, BTreeSet};

use super::{Config, DEFAULT_TOML};

/// One key of `blocker.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// Dotted path, e.g. `maps.block_v4`.
    pub path: String,
    /// TOML table it is written in (`""` for the top level).
    pub table: String,
    /// What the parser accepts (e.g. `u32`, `duration`, one of `"auto"`, ...).
    pub ty: String,
    /// The default, as TOML.
    pub default: String,
    /// The comment above the key in `blocker.toml` (shared by keys written
    /// right under one another without a comment of their own).
    pub doc: String,
    /// Whether the key is a table of user-chosen names (`[council.llm.roles.NAME]`).
    pub open_table: bool,
    /// Line in `blocker.toml`.
    pub line: usize,
}

/// A table of `blocker.toml` with the comments that are not about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// Comments above the table header and free-standing ones inside it.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "blocker.toml line {line}: {what}; every key of the default file needs a comment above it (or directly under a key that has one)"
    )]
    Undocumented { line: usize, what: String },
    #[error(
        "blocker.toml does not document {0:?}, which the parser's defaults contain: add it, with a comment, to blocker-user/blocker.toml"
    )]
    Missing(String),
    #[error("blocker.toml line {line} has {key:?}, which the parser does not know")]
    Unknown { line: usize, key: String },
    #[error("cannot tell the type of {key:?} from the parser's errors (got {message:?})")]
    Type { key: String, message: String },
    #[error("serializing the defaults: {0}")]
    Serialize(#[from] toml::ser::Error),
}

/// Every key of `blocker.toml`, in file order, and its tables.
pub fn keys() -> Result<(Vec<Key>, Vec<Table>), ReferenceError> {
    let (mut keys, tables) = scan(DEFAULT_TOML)?;
    let known = parser_keys()?;
    let written: BTreeSet<&str> = keys.iter().map(|k| k.path.as_str()).collect();
    if let Some(missing) = known.keys().find(|k| !written.contains(k.as_str())) {
        return Err(ReferenceError::Missing(missing.clone()));
    }
    for key in &mut keys {
        let Some(&open) = known.get(&key.path) else {
            return Err(ReferenceError::Unknown {
                line: key.line,
                key: key.path.clone(),
            });
        };
        key.open_table = open;
        key.ty = probe_type(&key.path, open)?;
    }
    Ok((keys, tables))
}

/// The keys the parser's defaults serialize to: leaves, and empty tables
/// (tables of user-chosen names, `true` in the map).
fn parser_keys() -> Result<BTreeMap<String, bool>, ReferenceError> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, bool>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) if !t.is_empty() => walk(&path, t, out),
                toml::Value::Table(_) => {
                    out.insert(path, true);
                }
                _ => {
                    out.insert(path, false);
                }
            }
        }
    }
    let value = toml::Table::try_from(Config::default())?;
    let mut out = BTreeMap::new();
    walk("", &value, &mut out);
    Ok(out)
}

/// Reads keys, values and comments of the default file. It is written in a
/// plain shape (one `key = value` per line, `[table]` headers, `#` comments);
/// [`keys`] checks what this finds against the real parser.
fn scan(text: &str) -> Result<(Vec<Key>, Vec<Table>), ReferenceError> {
    let mut keys: Vec<Key> = Vec::new();
    let mut tables = vec![Table::default()];
    let mut comment: Vec<&str> = Vec::new();
    // The doc a key right under the previous one shares.
    let mut group: Option<String> = None;
    let mut table_has_keys = true;
    let join = |lines: &[&str]| lines.join("\n").trim().to_string();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(c) = line.strip_prefix('#') {
            comment.push(c.strip_prefix(' ').unwrap_or(c));
            group = None;
        } else if line.is_empty() {
            if !comment.is_empty() {
                let note = comment.join("\n");
                tables.last_mut().expect("never empty").notes.push(note);
                comment.clear();
            }
            group = None;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            close_table(&mut keys, &tables, table_has_keys);
            tables.push(Table {
                name: name.to_string(),
                notes: if comment.is_empty() {
                    Vec::new()
                } else {
                    vec![comment.join("\n")]
                },
            });
            comment.clear();
            group = None;
            table_has_keys = false;
        } else if let Some((key, value)) = line.split_once('=') {
            let key = key.trim();
            let doc = if comment.is_empty() {
                group.clone().ok_or_else(|| ReferenceError::Undocumented {
                    line: i + 1,
                    what: format!("{key} has no comment"),
                })?
            } else {
                join(&comment)
            };
            comment.clear();
            let table = tables.last().expect("never empty").name.clone();
            keys.push(Key {
                path: if table.is_empty() {
                    key.to_string()
                } else {
                    format!("{table}.{key}")
                },
                table,
                ty: String::new(),
                default: value.trim().to_string(),
                doc: doc.clone(),
                open_table: false,
                line: i + 1,
            });
            group = Some(doc);
            table_has_keys = true;
        } else {
            return Err(ReferenceError::Undocumented {
                line: i + 1,
                what: format!("cannot read {line:?}"),
            });
        }
    }
    close_table(&mut keys, &tables, table_has_keys);
    Ok((keys, tables))
}

/// A table header with no keys under it (`[council.llm.roles]`) is itself
/// the key: a table of user-chosen names, documented by its notes.
fn close_table(keys: &mut Vec<Key>, tables: &[Table], had_keys: bool) {
    let table = tables.last().expect("never empty");
    if had_keys || table.name.is_empty() {
        return;
    }
    let (parent, _) = table.name.rsplit_once('.').unwrap_or(("", &table.name));
    keys.push(Key {
        path: table.name.clone(),
        table: parent.to_string(),
        ty: String::new(),
        default: "{}".into(),
        doc: format!(
            "{} See `[{}]` below.",
            table
                .notes
                .first()
                .and_then(|n| n.lines().next())
                .unwrap_or(""),
            table.name
        ),
        open_table: true,
        line: 0,
    });
}

/// The error the parser gives for `path = value`.
fn parse_error(path: &str, value: &str) -> Option<String> {
    let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
    let text = if table.is_empty() {
        format!("{key} = {value}\n")
    } else {
        format!("[{table}]\n{key} = {value}\n")
    };
    toml::from_str::<Config>(&text)
        .err()
        .map(|e| e.message().to_string())
}

/// What the deserializer expects at `path`, from its own messages.
fn probe_type(path: &str, open_table: bool) -> Result<String, ReferenceError> {
    let fail = |message: String| ReferenceError::Type {
        key: path.to_string(),
        message,
    };
    // A value no field of any type accepts: a date.
    let Some(message) = parse_error(path, "1979-05-27") else {
        return Err(fail("a date was accepted".into()));
    };
    // Enums say "wanted string or table" here, without an "expected".
    let expected = message
        .rsplit_once("expected ")
        .map(|(_, e)| e.trim().to_string())
        .unwrap_or_default();
    if open_table {
        // The names are the user's; what each holds comes from the table's notes.
        return Ok("table".into());
    }
    let ty = match expected.as_str() {
        "a string" | "path string" => {
            // A duration is a string the duration parser rejects.
            match parse_error(path, "\"§\"") {
                Some(m) if m.contains("30s, 5m, 1h") => "duration".into(),
                _ => "string".into(),
            }
        }
        "a boolean" => "boolean".into(),
        "a sequence" => match parse_error(path, "[\"§\"]") {
            Some(m) if m.contains("unknown variant") => {
                format!("array of {}", variants(&m).ok_or_else(|| fail(m.clone()))?)
            }
            _ => "array of strings".into(),
        },
        "f32" | "f64" => "float".into(),
        int if int.starts_with('u') || int.starts_with('i') => format!("integer ({int})"),
        _ => match parse_error(path, "\"§\"") {
            Some(m) if m.contains("unknown variant") => {
                variants(&m).ok_or_else(|| fail(m.clone()))?
            }
            Some(m) => return Err(fail(m)),
            None => return Err(fail(message)),
        },
    };
    Ok(ty)
}

/// `unknown variant `§`, expected one of `a`, `b`` → `"a" | "b"`.
fn variants(message: &str) -> Option<String> {
    let list = message
        .split_once("expected one of ")
        .map(|(_, l)| l)
        .or_else(|| message.split_once("expected ").map(|(_, l)| l))?;
    let names: Vec<String> = list
        .split(',')
        .map(|v| v.trim().trim_matches('`').replace("` or `", "\" | \""))
        .filter(|v| !v.is_empty())
        .map(|v| format!("\"{v}\""))
        .collect();
    (!names.is_empty()).then(|| names.join(" | "))
}

/// The reference as Markdown (`docs/config.md`).
pub fn markdown() -> Result<String, ReferenceError> {
    let (keys, tables) = keys()?;
    let mut out = String::from(
        "<!-- Generated by `cargo xtask docs` from blocker-user/blocker.toml and the config parser; do not edit. -->\n\
         # Configuration reference\n\n\
         `blocker` reads `/etc/blocker/blocker.toml` (or `--config FILE`, `$BLOCKER_CONFIG`). Every key is \
         optional; unknown keys are refused. Command-line flags override the file. \
         `blocker config default` prints the annotated default file this page is generated from.\n\n\
         Durations are written like `30s`, `5m`, `1h`, `7d`.\n",
    );
    for table in &tables {
        let in_table: Vec<&Key> = keys.iter().filter(|k| k.table == table.name).collect();
        if in_table.is_empty() && table.notes.is_empty() {
            continue;
        }
        if table.name.is_empty() {
            out.push_str("\n## Top level\n\n");
        } else {
            out.push_str(&format!("\n## `[{}]`\n\n", table.name));
        }
        // The file's opening comment is this page's introduction.
        let notes = if table.name.is_empty() {
            &[][..]
        } else {
            &table.notes[..]
        };
        for note in notes {
            out.push_str(&paragraphs(note));
        }
        if in_table.is_empty() {
            continue;
        }
        out.push_str("| Key | Type | Default | Description |\n|---|---|---|---|\n");
        let mut previous: Option<&Key> = None;
        for key in in_table {
            let doc = match previous {
                Some(p) if p.doc == key.doc => format!("As `{}`.", p.path),
                _ => key.doc.clone(),
            };
            let name = key.path.rsplit('.').next().unwrap_or(&key.path);
            let name = if key.open_table {
                format!("`{name}.NAME`")
            } else {
                format!("`{name}`")
            };
            out.push_str(&format!(
                "| {name} | {} | `{}` | {} |\n",
                cell(&key.ty),
                key.default.replace('|', "\\|"),
                cell(&doc)
            ));
            if previous.is_none_or(|p| p.doc != key.doc) {
                previous = Some(key);
            }
        }
    }
    Ok(out)
}

/// Whether a comment line is an example (TOML written out) rather than prose.
fn is_example(line: &str) -> bool {
    line.starts_with(' ')
        || line.starts_with('[')
        || (line.contains(" = ") && toml::from_str::<toml::Table>(line).is_ok())
}

/// A comment as a table cell: prose joined, example lines as code.
fn cell(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let piece = if is_example(line) {
            format!("<br>`{}`", line.trim())
        } else if out.is_empty() {
            line.to_string()
        } else {
            format!(" {line}")
        };
        out.push_str(&piece);
    }
    out.replace('|', "\\|")
}

/// A comment as Markdown paragraphs, examples fenced.
fn paragraphs(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in text.lines() {
        let example = is_example(line);
        if example != in_code {
            out.push_str(if example { "\n```toml\n" } else { "```\n" });
            in_code = example;
        } else if !example && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
        if example {
            out.push('\n');
        }
    }
    if in_code {
        out.push_str("```\n\n");
    } else {
        out.push_str("\n\n");
    }
    out
}

/// Dotted paths of every key set in `text` (a TOML file or fragment).
pub fn paths_in(text: &str) -> Result<Vec<String>, toml::de::Error> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) if !t.is_empty() => walk(&path, t, out),
                _ => out.push(path),
            }
        }
    }
    let table: toml::Table = toml::from_str(text)?;
    let mut out = Vec::new();
    walk("", &table, &mut out);
    Ok(out)
}

/// Whether the reference documents `path` (keys under a table of
/// user-chosen names count as that table's).
pub fn documents(keys: &[Key], path: &str) -> bool {
    keys.iter().any(|k| {
        k.path == path
            || (k.open_table
                && path
                    .strip_prefix(&k.path)
                    .is_some_and(|rest| rest.starts_with('.')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_type_and_a_doc() {
        let (keys, _) = keys().unwrap();
        assert!(keys.iter().all(|k| !k.doc.is_empty() && !k.ty.is_empty()));
        assert!(documents(&keys, "maps.block_v4"));
        assert!(documents(&keys, "council.llm.roles.auditor.model"));
        assert!(!documents(&keys, "maps.block_v5"));
        assert!(!documents(&keys, "council.llm.rolesx"));
    }

    /// The TOML the repository shows operators: ```toml blocks of the
    /// README and the `blocker.toml: |` blocks of the Kubernetes manifests.
    fn examples() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut out = Vec::new();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let mut block: Option<String> = None;
        for line in readme.lines() {
            match &mut block {
                None if line.trim() == "```toml" => block = Some(String::new()),
                Some(b) if line.trim() == "```" => {
                    out.push(("README.md".into(), std::mem::take(b)));
                    block = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
                None => {}
            }
        }
        let kube = root.join("packaging/kubernetes");
        for entry in std::fs::read_dir(&kube).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line.trim() != "blocker.toml: |" {
                    continue;
                }
                let indent = line.len() - line.trim_start().len();
                let mut b = String::new();
                for l in lines.by_ref() {
                    if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                        break;
                    }
                    b.push_str(l.trim_start());
                    b.push('\n');
                }
                out.push((path.display().to_string(), b));
            }
        }
        out
    }

    #[test]
    fn every_key_of_the_examples_is_in_the_reference() {
        let (keys, _) = keys().unwrap();
        let examples = examples();
        assert!(
            examples.iter().any(|(f, _)| f == "README.md")
                && examples.iter().any(|(f, _)| f.contains("daemonset")),
            "found no example configs: {examples:?}"
        );
        for (file, text) in &examples {
            for path in paths_in(text).unwrap_or_else(|e| panic!("{file}: {e}\n{text}")) {
                assert!(
                    documents(&keys, &path),
                    "{file} sets {path}, which docs/config.md does not document"
                );
            }
            // And the parser takes them (unknown keys are refused).
            toml::from_str::<Config>(text).unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
        }
    }
}
