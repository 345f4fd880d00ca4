//! The source tree keeps the shape DESIGN.md and the README describe: the modules of `src/` import
//! each other without cycles (top-down: cli → controller/server → snapshot → render/xds →
//! compile → model → diagnostic), no module file grows past what one concept needs, and the
//! README's layout section names every top-level module.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest non-test source file, in lines.
const MAX_LINES: usize = 400;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/compile/cluster.rs` → `["compile", "cluster"]`; `mod.rs` and the crate roots name their folder.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// The code of a file without its `#[cfg(test)]` module (tests may reach anywhere).
fn non_test_code(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests").map_or(text, |at| &text[..at])
}

/// Every `crate::a::b` and `super::b` path in the code of module `module`, as absolute segments.
fn crate_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", &[][..]), ("super::", &module[..module.len().saturating_sub(1)])] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let preceded_by_path = rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
            rest = &rest[at + prefix.len()..];
            if preceded_by_path {
                continue; // `super::super::` or `a::super`: not a path of this module
            }
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            let mut path = base.to_vec();
            path.extend(rest[..end].split("::").filter(|s| !s.is_empty()).map(str::to_string));
            out.push(path);
        }
    }
    out
}

/// Edges between sibling modules at every level: `a/x.rs` using `crate::a::y` (or `super::y`) is
/// an edge x → y inside `a`; using `crate::b` is an edge a → b at the top.
fn dependency_graphs(src: &Path) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let from = module_path(src, &file);
        if from.is_empty() {
            continue; // lib.rs / main.rs declare the modules
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for to in crate_paths(&from, non_test_code(&text)) {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                let graph = graphs.entry(from[..common].to_vec()).or_default();
                graph.entry(from[common].clone()).or_default().insert(to[common].clone());
            }
        }
    }
    graphs
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_import_each_other_without_cycles() {
    let src = support::manifest_dir().join("src");
    let graphs = dependency_graphs(&src);
    assert!(graphs.contains_key(&Vec::new()), "the top-level graph was found");
    for (parent, graph) in &graphs {
        if let Some(cycle) = find_cycle(graph) {
            panic!("import cycle in crate::{}: {}", parent.join("::"), cycle.join(" -> "));
        }
    }
    // The pure layers never reach up into I/O or serving.
    let top = &graphs[&Vec::new()];
    for pure in ["diagnostic", "model", "compile", "xds", "render"] {
        for io in ["source", "controller", "server", "cli", "snapshot"] {
            assert!(!top.get(pure).is_some_and(|deps| deps.contains(io)), "{pure} imports {io}");
        }
    }
}

#[test]
fn cycle_detection_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), [b.to_string()].into_iter().collect()))
        .collect();
    assert_eq!(find_cycle(&graph).unwrap().len(), 4);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c")].into_iter().map(|(a, b)| (a.to_string(), [b.to_string()].into())).collect();
    assert!(find_cycle(&graph).is_none());
}

#[test]
fn no_module_file_outgrows_one_concept() {
    let src = support::manifest_dir().join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let too_long: Vec<String> = files
        .iter()
        .filter(|file| file.file_name().is_some_and(|n| n != "tests.rs"))
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(too_long.is_empty(), "split these by concept: {too_long:?}");
}

#[test]
fn readme_layout_names_every_top_level_module() {
    let root = support::manifest_dir();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layout = &readme[readme.find("## Layout").expect("README has a Layout section")..];
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name == "main.rs" || name == "lib.rs" {
            continue;
        }
        let shown = if name.ends_with(".rs") { format!("src/{name}") } else { format!("src/{name}/") };
        assert!(layout.contains(&shown), "the README's layout section does not mention {shown}");
    }
}
