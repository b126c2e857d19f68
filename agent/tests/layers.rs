//! The layering written in the `//!` of `src/lib.rs` holds: no module
//! imports from a layer above its own, the roles `server` and `agent` never
//! import each other, and no two modules import each other in a cycle
//! (test code aside, which may use helpers of the module it tests).
//!
//! It reads the layer list from `src/lib.rs` and every path through
//! `crate::`, `super::` (and `steer::` in `main.rs`) in the files of
//! `src/`, in `use` lines and in code alike; comments are skipped. A
//! module nested in a listed one is in that one's layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The roles, which must not import each other.
const ROLES: [&str; 2] = ["server", "agent"];

type ModPath = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The numbered list under `# Layers` in lib.rs: each listed module with
/// its layer number.
fn layers() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("read src/lib.rs");
    let mut layers = BTreeMap::new();
    let mut current = None;
    for line in lib.lines().filter_map(|l| l.strip_prefix("//!")) {
        let text = line.trim_start();
        let number = text
            .split_once(". ")
            .and_then(|(n, _)| n.parse::<usize>().ok());
        match number {
            Some(n) => current = Some(n),
            None if text.is_empty() || !line.starts_with("    ") => current = None,
            None => {}
        }
        let Some(layer) = current else { continue };
        for (i, module) in text.split('`').enumerate() {
            if i % 2 == 1 {
                layers.insert(module.to_string(), layer);
            }
        }
    }
    assert!(
        layers.len() > 10,
        "no layer list found in src/lib.rs: {layers:?}"
    );
    layers
}

/// The layer of `module`: that of its longest listed prefix.
fn layer_of(layers: &BTreeMap<String, usize>, module: &[String]) -> Option<(usize, String)> {
    (1..=module.len()).rev().find_map(|n| {
        let name = module[..n].join("::");
        layers.get(&name).map(|&l| (l, name))
    })
}

/// The module a source file is, e.g. `bgp/message/mod.rs` is
/// `bgp::message`.
fn module_of(file: &Path) -> ModPath {
    let rel = file.strip_prefix(src()).expect("file under src/");
    let mut parts: ModPath = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One path a module names.
struct Reference {
    target: ModPath,
    /// In test code: a test module, or an inline `#[cfg(test)] mod`.
    test: bool,
    line: usize,
}

/// The text with `//` comments blanked (so offsets and lines stay), and
/// the offset where an inline `#[cfg(test)] mod … {` begins, if any.
fn code_of(text: &str) -> (String, Option<usize>) {
    let mut code = String::with_capacity(text.len());
    let mut inline_test = None;
    let mut cfg_test = false;
    for line in text.split_inclusive('\n') {
        let cut = line
            .match_indices("//")
            .find(|(i, _)| *i == 0 || line.as_bytes()[i - 1] != b':')
            .map_or(line.len(), |(i, _)| i);
        let trimmed = line.trim();
        if cfg_test && trimmed.starts_with("mod ") && trimmed.ends_with('{') {
            inline_test.get_or_insert(code.len());
        }
        cfg_test = trimmed == "#[cfg(test)]";
        code.push_str(&line[..cut]);
        code.push_str(&" ".repeat(line[cut..].trim_end_matches('\n').len()));
        if line.ends_with('\n') && cut < line.len() {
            code.push('\n');
        }
    }
    (code, inline_test)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parse a use tree at `*i`: `a::b::C`, `a::{b, c::{d, *}}`, appending
/// each full path (after `prefix`) to `out`.
fn parse_tree(s: &[u8], i: &mut usize, prefix: ModPath, out: &mut Vec<ModPath>) {
    let mut path = prefix;
    loop {
        while s.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
        if s.get(*i) == Some(&b'{') {
            *i += 1;
            loop {
                parse_tree(s, i, path.clone(), out);
                while s.get(*i).is_some_and(u8::is_ascii_whitespace) {
                    *i += 1;
                }
                match s.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return;
                    }
                    _ => return,
                }
                while s.get(*i).is_some_and(u8::is_ascii_whitespace) {
                    *i += 1;
                }
                if s.get(*i) == Some(&b'}') {
                    *i += 1;
                    return;
                }
            }
        }
        let start = *i;
        while s.get(*i).is_some_and(|&b| is_ident(b) || b == b'*') {
            *i += 1;
        }
        let segment = String::from_utf8_lossy(&s[start..*i]).into_owned();
        if !segment.is_empty() && segment != "self" && segment != "*" {
            path.push(segment);
        }
        if s.get(*i..*i + 2) == Some(b"::") {
            *i += 2;
        } else {
            out.push(path);
            return;
        }
    }
}

/// Every path `module` names through `crate::`, `super::` or `steer::`.
fn references(module: &ModPath, text: &str, test_file: bool) -> Vec<Reference> {
    let (code, inline_test) = code_of(text);
    let s = code.as_bytes();
    let mut refs = Vec::new();
    let keywords: &[&str] = if module.as_slice() == ["main"] {
        &["steer::"]
    } else {
        &["crate::", "super::"]
    };
    for keyword in keywords {
        for (at, _) in code.match_indices(keyword) {
            if at > 0 && (is_ident(s[at - 1]) || s[at - 1] == b':') {
                continue;
            }
            let in_inline_test = inline_test.is_some_and(|t| at >= t);
            let mut base = module.clone();
            if in_inline_test {
                base.push("tests".to_string());
            }
            let mut i = at;
            let root: ModPath = match *keyword {
                "super::" => {
                    let mut b = base.clone();
                    while s.get(i..i + 7) == Some(b"super::") {
                        b.pop();
                        i += 7;
                    }
                    b
                }
                _ => {
                    i += keyword.len();
                    Vec::new()
                }
            };
            let mut paths = Vec::new();
            parse_tree(s, &mut i, root, &mut paths);
            let line = code[..at].matches('\n').count() + 1;
            refs.extend(paths.into_iter().map(|target| Reference {
                target,
                test: test_file || in_inline_test,
                line,
            }));
        }
    }
    refs
}

fn is_test_module(module: &ModPath) -> bool {
    module
        .iter()
        .any(|p| p == "tests" || p.ends_with("_tests") || p == "test_util")
}

/// The unit a path counts as for cycles: the module it names or is in,
/// cut to a top-level module or one level below one
/// (`bgp::message::update::decode` is `bgp::message`).
fn unit(modules: &BTreeSet<ModPath>, path: &[String]) -> String {
    let module = (0..=path.len())
        .rev()
        .map(|n| &path[..n])
        .find(|p| modules.contains(*p))
        .unwrap_or(path);
    module[..module.len().min(2)].join("::")
}

#[test]
fn no_module_imports_from_a_layer_above_its_own_nor_the_other_role_nor_in_a_cycle() {
    let layers = layers();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(f)).collect();
    let mut breaches = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        let text = std::fs::read_to_string(file).expect("read source");
        let refs = references(&module, &text, is_test_module(&module));
        if refs.is_empty() {
            continue;
        }
        let shown = file
            .strip_prefix(src())
            .unwrap_or(file)
            .display()
            .to_string();
        let Some((own, own_name)) = layer_of(&layers, &module) else {
            breaches.push(format!(
                "src/{shown}: module {} is in no layer of src/lib.rs",
                module.join("::")
            ));
            continue;
        };
        for r in refs {
            if r.target.is_empty() {
                continue;
            }
            let Some((theirs, their_name)) = layer_of(&layers, &r.target) else {
                breaches.push(format!(
                    "src/{shown}:{}: {} is in no layer of src/lib.rs",
                    r.line,
                    r.target.join("::")
                ));
                continue;
            };
            if theirs > own {
                breaches.push(format!(
                    "src/{shown}:{}: {own_name} (layer {own}) imports {} of {their_name} (layer {theirs})",
                    r.line,
                    r.target.join("::"),
                ));
            }
            let (from, to) = (&module[0], &r.target[0]);
            if from != to && ROLES.contains(&from.as_str()) && ROLES.contains(&to.as_str()) {
                breaches.push(format!(
                    "src/{shown}:{}: role {from} imports {} of role {to}",
                    r.line,
                    r.target.join("::"),
                ));
            }
            let (a, b) = (unit(&modules, &module), unit(&modules, &r.target));
            if !r.test && a != b {
                edges.entry(a).or_default().insert(b);
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        breaches.push(format!(
            "modules import each other in a cycle: {}",
            cycle.join(" -> ")
        ));
    }
    assert!(
        breaches.is_empty(),
        "layering breached:\n{}",
        breaches.join("\n")
    );
}

/// A cycle of the graph, as the units along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut done, &mut Vec::new()))
}

#[test]
fn the_reader_sees_grouped_nested_and_relative_paths() {
    let module: ModPath = vec!["bgp".into(), "message".into(), "update".into()];
    let text = "use super::{frame, Update};\nuse crate::bgp::{attribute::{self, X}, iana::*};\n// use crate::server::core;\nfn f() { crate::rib::table::f(\"https://x\") }\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n";
    let refs = references(&module, text, false);
    let got: Vec<(String, bool)> = refs.iter().map(|r| (r.target.join("::"), r.test)).collect();
    assert_eq!(
        got,
        [
            ("bgp::attribute".to_string(), false),
            ("bgp::attribute::X".to_string(), false),
            ("bgp::iana".to_string(), false),
            ("rib::table::f".to_string(), false),
            ("bgp::message::frame".to_string(), false),
            ("bgp::message::Update".to_string(), false),
            ("bgp::message::update".to_string(), true),
        ]
    );
    let layers = layers();
    assert_eq!(
        layer_of(&layers, &["bgp".into(), "session".into()]).map(|l| l.1),
        Some("bgp::session".to_string())
    );
}
