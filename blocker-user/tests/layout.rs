//! The rooms of `blocker-user/src` import one another one way, down the data
//! flow (README, "Code map"): no two rooms import each other, directly or
//! through others. A newcomer who adds an import against the flow learns it
//! here, with the cycle named, instead of in review.
//!
//! Rooms are the top-level modules (`kernel/`, `evidence/`, `incident.rs`,
//! ...). Test modules may reach anywhere; only the code before a file's
//! first `#[cfg(test)]` counts. `cli/` is the binary, above everything.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The rooms named by `crate::room` paths in `code`, including the items of
/// `use crate::{a::..., b, ...}` groups.
fn imported_rooms(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: `a::...`, `b`, `c::{...}`.
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && depth == 0 && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[j..]);
                        if !name.is_empty() {
                            out.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn rooms_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let room_of = |p: &Path| -> String {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let rooms: BTreeSet<String> = files.iter().map(|p| room_of(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let room = room_of(path);
        if matches!(room.as_str(), "lib" | "main" | "cli") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = graph.entry(room.clone()).or_default();
        for r in imported_rooms(code) {
            if r != room && rooms.contains(&r) {
                deps.insert(r);
            }
        }
    }
    assert!(
        graph.contains_key("kernel") && graph.contains_key("daemon"),
        "{graph:?}"
    );
    // Every pair of rooms that reach each other is a cycle.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(r) = todo.pop() {
            for d in graph.get(&r).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let mut cycles = Vec::new();
    for a in graph.keys() {
        for b in reach(a) {
            if a < &b && reach(&b).contains(a) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "rooms that import each other (directly or through others): {cycles:?}; \
         move the shared type down to the lower room (see README, \"Code map\")\n{graph:#?}"
    );
}

/// The flow, lowest first: a room may import only rooms below it (shared
/// vocabulary imports anything of rank 0). A new room gets its place here.
const RANKS: &[(&str, u32)] = &[
    ("addr", 0),
    ("choice", 0),
    ("clock", 0),
    ("rule", 0),
    ("text", 0),
    ("ttl", 0),
    ("kernel", 1),
    ("evidence", 2),
    ("incident", 3),
    ("council", 4),
    ("guard", 5),
    ("state", 6),
    ("verdict", 7),
    ("fleet", 7),
    ("metrics", 8),
    ("config", 8),
    ("daemon", 9),
    ("debate", 10),
];

#[test]
fn rooms_import_down_the_flow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let rank = |room: &str| RANKS.iter().find(|r| r.0 == room).map(|r| r.1);
    let mut wrong = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap();
        let room = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let room = room.trim_end_matches(".rs");
        if matches!(room, "lib" | "main" | "cli") {
            continue;
        }
        let Some(mine) = rank(room) else {
            wrong.push(format!("{room} has no place in RANKS (tests/layout.rs)"));
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for dep in imported_rooms(code) {
            match rank(&dep) {
                Some(theirs) if dep != room && theirs >= mine && !(mine == 0 && theirs == 0) => {
                    wrong.push(format!(
                        "{} imports {dep}, which is not below it",
                        rel.display()
                    ));
                }
                _ => {}
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "imports against the flow: {wrong:#?}");
}

#[test]
fn the_scanner_sees_grouped_and_plain_imports() {
    let code = "use crate::{\n    kernel::{maps, pins},\n    rule::List,\n    text,\n};\nfn f() { crate::clock::now(); }";
    let got: Vec<String> = imported_rooms(code).into_iter().collect();
    assert_eq!(got, ["clock", "kernel", "rule", "text"]);
}
