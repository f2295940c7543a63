//! The nucleus' source files import each other without a cycle: arrows
//! point down only (DESIGN.md, "Nucleus layering"). This parses every file
//! of the module tree (from `main.rs` and `lib.rs`, following `mod`
//! declarations and `#[path]`), collects the paths each file names —
//! `use` trees, paths in code and types, and `crate::`/`super::`/`self::`
//! paths inside macro invocations — resolves them to the file of the
//! module they reach, and fails with the cycle if the graph has one.
//!
//! The kernel (`main.rs`) and the host-tested library (`lib.rs`) are two
//! crates of one package: each has its own `crate::`, and the kernel's
//! `nucleus::` paths are imports of the library's files, checked like any
//! other.
//!
//! Beyond the absence of cycles, every file belongs to one named layer
//! (`LAYERS`, bottom first) and imports only from its own layer or below,
//! so "arrows point down" is checked by name, and a new file must be given
//! its place.
//!
//! A parent's `mod child;` declaration is not an import; a `super::` path
//! is an import of the parent. `IMPORT_GRAPH_PRINT=1` prints the edges;
//! `IMPORT_GRAPH_SRC=dir` checks the tree in `dir` instead of `src/`.

use proc_macro2::{TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// A module's path from the crate root (empty for the root).
type ModPath = Vec<String>;
/// Modules a `use` brought into a module's scope: (module, name) -> module.
type Aliases = BTreeMap<(ModPath, String), ModPath>;

/// The crate's module tree and what each file imports.
struct ModuleGraph {
    /// Each root's module path: empty for the kernel, `[name]` for a crate
    /// the others reach as `name::` (the library).
    roots: Vec<ModPath>,
    /// Every module (file or inline) and the file it is written in.
    modules: BTreeMap<ModPath, PathBuf>,
    /// Exported macros (`#[macro_export]`) and their files.
    macros: BTreeMap<String, PathBuf>,
    /// Each file's module path and parsed contents.
    files: BTreeMap<PathBuf, (ModPath, syn::File)>,
}

fn path_attribute(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find(|a| a.path().is_ident("path")).and_then(|a| match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// The directory a file's child modules live in.
fn child_dir(file: &Path, is_root: bool) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if is_root || stem == "mod" { dir } else { dir.join(stem) }
}

impl ModuleGraph {
    /// Loads the crates rooted at each of `roots` (a path relative to the
    /// source directory, and the name the other crates import it by, if
    /// any), reading files with `read`.
    fn load(roots: &[(&str, Option<&str>)], read: &dyn Fn(&Path) -> Option<String>) -> Result<Self, String> {
        let mut graph = ModuleGraph {
            roots: Vec::new(),
            modules: BTreeMap::new(),
            macros: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        for (root, name) in roots {
            let path: ModPath = name.iter().map(ToString::to_string).collect();
            graph.roots.push(path.clone());
            graph.load_file(Path::new(root), path, true, read)?;
        }
        Ok(graph)
    }

    /// The root of the crate module `at` belongs to (the longest root it
    /// starts with).
    fn crate_of(&self, at: &ModPath) -> ModPath {
        self.roots
            .iter()
            .filter(|root| at.starts_with(root))
            .max_by_key(|root| root.len())
            .cloned()
            .unwrap_or_default()
    }

    fn load_file(
        &mut self,
        file: &Path,
        path: ModPath,
        is_root: bool,
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> Result<(), String> {
        let text = read(file).ok_or_else(|| format!("cannot read {}", file.display()))?;
        let parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        self.modules.insert(path.clone(), file.to_path_buf());
        let dir = child_dir(file, is_root);
        self.load_items(file, &dir, &path, &parsed.items, read)?;
        self.files.insert(file.to_path_buf(), (path, parsed));
        Ok(())
    }

    fn load_items(
        &mut self,
        file: &Path,
        dir: &Path,
        path: &ModPath,
        items: &[syn::Item],
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> Result<(), String> {
        for item in items {
            match item {
                syn::Item::Mod(module) => {
                    let mut child = path.clone();
                    child.push(module.ident.to_string());
                    match &module.content {
                        Some((_, items)) => {
                            self.modules.insert(child.clone(), file.to_path_buf());
                            let inner_dir = dir.join(module.ident.to_string());
                            self.load_items(file, &inner_dir, &child, items, read)?;
                        }
                        None => {
                            let name = module.ident.to_string();
                            let child_file = match path_attribute(&module.attrs) {
                                Some(relative) => dir.join(relative),
                                None if read(&dir.join(format!("{name}.rs"))).is_some() => {
                                    dir.join(format!("{name}.rs"))
                                }
                                None => dir.join(&name).join("mod.rs"),
                            };
                            self.load_file(&child_file, child, false, read)?;
                        }
                    }
                }
                syn::Item::Macro(mac)
                    if mac.attrs.iter().any(|a| a.path().is_ident("macro_export")) && mac.ident.is_some() =>
                {
                    let name = mac.ident.as_ref().map(ToString::to_string).unwrap_or_default();
                    self.macros.insert(name, file.to_path_buf());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The module path a path (as written in module `at`) leads to, and
    /// the file of the innermost module on it, if it names a module of the
    /// crate or something in one. `aliases` are the modules `use` lines
    /// brought into scope, by (module, name).
    fn resolve(&self, at: &ModPath, segments: &[String], aliases: &Aliases) -> Option<PathBuf> {
        self.resolve_module(at, segments, aliases).and_then(|module| self.modules.get(&module).cloned())
    }

    fn resolve_module(&self, at: &ModPath, segments: &[String], aliases: &Aliases) -> Option<ModPath> {
        let (mut absolute, rest) = match segments.first().map(String::as_str) {
            Some("crate") => (self.crate_of(at), &segments[1..]),
            Some("self") => (at.clone(), &segments[1..]),
            Some("super") => {
                let mut base = at.clone();
                let mut rest = segments;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                (base, rest)
            }
            Some(first) => {
                let mut child = at.clone();
                child.push(first.to_string());
                if self.modules.contains_key(&child) {
                    (at.clone(), segments)
                } else if let Some(module) = aliases.get(&(at.clone(), first.to_string())) {
                    (module.clone(), &segments[1..]) // a module a `use` brought in
                } else if self.roots.iter().any(|root| root.len() == 1 && root[0] == first) {
                    (Vec::new(), segments) // another crate of the package, by name
                } else {
                    return None; // an item, a local, or another crate
                }
            }
            None => return None,
        };
        if self.roots.contains(&absolute)
            && let Some(file) = rest.first().and_then(|name| self.macros.get(name))
        {
            return self.modules.iter().find(|(_, f)| *f == file).map(|(module, _)| module.clone());
        }
        absolute.extend(rest.iter().cloned());
        (0..=absolute.len()).rev().map(|len| absolute[..len].to_vec()).find(|m| self.modules.contains_key(m))
    }

    /// Each file and the files it imports.
    fn edges(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut edges = BTreeMap::new();
        for (file, (path, parsed)) in &self.files {
            let mut collector = Collector { at: vec![path.clone()], found: Vec::new(), uses: Vec::new() };
            collector.visit_file(parsed);
            // Names `use` lines bind to whole modules (`use crate::drivers;`,
            // `use crate::process::{self, ..}`, `use x as y`).
            let mut aliases = Aliases::new();
            for (at, segments, name) in &collector.uses {
                if let Some(module) = self.resolve_module(at, segments, &Aliases::new())
                    && module.last() == segments.last()
                {
                    aliases.insert((at.clone(), name.clone()), module);
                }
            }
            let targets: BTreeSet<PathBuf> = collector
                .found
                .iter()
                .filter_map(|(at, segments)| self.resolve(at, segments, &aliases))
                .filter(|target| target != file)
                .collect();
            edges.insert(file.clone(), targets);
        }
        edges
    }
}

/// Collects every path a file names, with the module it is named in.
struct Collector {
    /// The module path stack (inline modules push onto it).
    at: Vec<ModPath>,
    found: Vec<(ModPath, Vec<String>)>,
    /// `use` leaves: where, the path, and the name it binds.
    uses: Vec<(ModPath, Vec<String>, String)>,
}

impl Collector {
    fn here(&self) -> ModPath {
        self.at.last().cloned().unwrap_or_default()
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident, &n.ident),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, &r.ident, &r.rename),
            syn::UseTree::Glob(_) => self.found.push((self.here(), prefix.clone())),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], ident: &syn::Ident, name: &syn::Ident) {
        let mut path = prefix.to_vec();
        let bound = if ident == "self" {
            prefix.last().cloned().unwrap_or_default()
        } else {
            path.push(ident.to_string());
            name.to_string()
        };
        self.found.push((self.here(), path.clone()));
        self.uses.push((self.here(), path, bound));
    }

    /// `crate::a::b`, `super::x`, `self::y` inside macro arguments.
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut index = 0;
        while index < trees.len() {
            match &trees[index] {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident)
                    if ["crate", "super", "self"].contains(&ident.to_string().as_str()) =>
                {
                    let preceded_by_dollar =
                        index > 0 && matches!(&trees[index - 1], TokenTree::Punct(p) if p.as_char() == '$');
                    let (segments, next) = path_in_tokens(&trees, index);
                    if !preceded_by_dollar && segments.len() > 1 {
                        self.found.push((self.here(), segments));
                    }
                    index = next;
                    continue;
                }
                _ => {}
            }
            index += 1;
        }
    }
}

/// The `a::b::c` path starting at `trees[start]`, and the index after it.
fn path_in_tokens(trees: &[TokenTree], start: usize) -> (Vec<String>, usize) {
    let mut segments = Vec::new();
    let mut index = start;
    while let Some(TokenTree::Ident(ident)) = trees.get(index) {
        segments.push(ident.to_string());
        let colons = matches!(
            (trees.get(index + 1), trees.get(index + 2)),
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':'
        );
        if !colons {
            return (segments, index + 1);
        }
        index += 3;
    }
    (segments, index)
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        if module.content.is_some() {
            let mut inner = self.here();
            inner.push(module.ident.to_string());
            self.at.push(inner);
            syn::visit::visit_item_mod(self, module);
            self.at.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.found.push((self.here(), segments));
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// A cycle of the graph (its files in order), if it has one.
fn find_cycle(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnStack,
        Done,
    }
    fn visit(
        node: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        marks: &mut BTreeMap<PathBuf, Mark>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        marks.insert(node.clone(), Mark::OnStack);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::OnStack) => {
                    let start = stack.iter().position(|n| n == next).expect("on the stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if !marks.contains_key(node)
            && let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

fn show(cycle: &[PathBuf]) -> String {
    cycle.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> ")
}

/// The nucleus's layers, bottom first (DESIGN.md, "Nucleus layering"): each
/// names the files it holds (a name ending in `/` holds a whole folder).
const LAYERS: &[(&str, &[&str])] = &[
    ("shared types: the plain data system calls decode into (library)", &["call_types.rs"]),
    (
        "platform: architecture and board facts, locks, the kernel heap",
        &["arch/", "board.rs", "sync.rs", "heap.rs", "asid.rs", "contiguous.rs", "power.rs", "devicetree.rs"],
    ),
    ("drivers: leaves that report what happened, and the console", &["drivers/", "console.rs"]),
    (
        "core: segments, processes, threads, scheduling",
        &[
            "memory/",
            "process/mod.rs",
            "process/thread.rs",
            "process/run_queue.rs",
            "process/sched.rs",
            "process/outcome.rs",
            "process/signal.rs",
            "process/pending_signals.rs",
            "process/loader.rs",
            "process/user_memory.rs",
            "owner_watch.rs",
        ],
    ),
    (
        "services: RPC, groups, the disk and process servers",
        &["rpc.rs", "group.rs", "disk.rs", "disk_queue.rs", "process/server/", "services.rs"],
    ),
    (
        "entry points: traps, interrupts, system calls, the network thread",
        &["trap.rs", "interrupts.rs", "syscall/", "net/"],
    ),
    ("start-up", &["startup.rs", "disk_self_test.rs", "main.rs", "lib.rs"]),
];

/// The layer (index into `layers`) that holds `file`.
fn layer_of(layers: &[(&str, &[&str])], file: &Path) -> Option<usize> {
    let file = file.to_str()?;
    layers.iter().position(|(_, holds)| {
        holds.iter().any(|name| if name.ends_with('/') { file.starts_with(name) } else { file == *name })
    })
}

/// Every import that points up, and every file no layer holds, in words.
fn layer_violations(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>, layers: &[(&str, &[&str])]) -> Vec<String> {
    let mut found = Vec::new();
    for (file, targets) in edges {
        let Some(from) = layer_of(layers, file) else {
            found.push(format!("{} is in no layer", file.display()));
            continue;
        };
        for target in targets {
            if let Some(to) = layer_of(layers, target)
                && to > from
            {
                found.push(format!(
                    "{} ({}) imports {} ({}), a layer above",
                    file.display(),
                    layers[from].0,
                    target.display(),
                    layers[to].0
                ));
            }
        }
    }
    found
}

/// The package's crates: the kernel, and the library it imports as `nucleus::`.
const CRATES: [(&str, Option<&str>); 2] = [("main.rs", None), ("lib.rs", Some("nucleus"))];

/// Files the walk must reach in the nucleus' own tree (so that a broken
/// walk cannot pass by seeing nothing).
const EXPECTED_FILES: [&str; 6] = [
    "process/mod.rs",
    "process/server/mod.rs",
    "rpc.rs",
    "group.rs",
    "syscall/mod.rs",
    "arch/aarch64/mmu.rs",
];

#[test]
fn the_nucleus_imports_form_no_cycle_and_point_down_its_layers() {
    // IMPORT_GRAPH_SRC checks another tree (an older checkout, say).
    let other_tree = std::env::var_os("IMPORT_GRAPH_SRC").map(PathBuf::from);
    let src = other_tree.clone().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let read = |file: &Path| std::fs::read_to_string(src.join(file)).ok();
    let edges = ModuleGraph::load(&CRATES, &read).unwrap().edges();
    if other_tree.is_none() {
        for file in EXPECTED_FILES {
            assert!(edges.contains_key(Path::new(file)), "{file} was not found from main.rs");
        }
        assert!(edges[Path::new("rpc.rs")].contains(Path::new("process/mod.rs")), "rpc.rs uses the core");
        // The kernel's `nucleus::` paths reach the library's files.
        assert!(
            edges[Path::new("process/mod.rs")].contains(Path::new("asid.rs")),
            "the core uses the library"
        );
    }
    if std::env::var_os("IMPORT_GRAPH_PRINT").is_some() {
        for (file, targets) in &edges {
            let targets: Vec<String> = targets.iter().map(|t| t.display().to_string()).collect();
            println!("{} -> {}", file.display(), targets.join(", "));
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        panic!("the nucleus' imports form a cycle: {}", show(&cycle));
    }
    if other_tree.is_none() {
        let violations = layer_violations(&edges, LAYERS);
        assert!(violations.is_empty(), "the nucleus' layers:\n{}", violations.join("\n"));
    }
}

// The checker on small crates of its own, which it must accept or reject.

fn graph_of(files: &[(&str, &str)]) -> ModuleGraph {
    let files: BTreeMap<PathBuf, String> =
        files.iter().map(|(path, text)| (PathBuf::from(path), text.to_string())).collect();
    let roots: &[(&str, Option<&str>)] =
        if files.contains_key(Path::new("lib.rs")) { &CRATES } else { &CRATES[..1] };
    ModuleGraph::load(roots, &|file: &Path| files.get(file).cloned()).unwrap()
}

fn cycle_of(files: &[(&str, &str)]) -> Option<String> {
    find_cycle(&graph_of(files).edges()).map(|cycle| show(&cycle))
}

#[test]
fn a_layered_crate_passes() {
    let files = [
        ("main.rs", "mod a; mod b; mod c; mod drivers;"),
        ("a.rs", "use crate::b::Thing; use crate::drivers::timer; fn f() { crate::c::g(); }"),
        ("b.rs", "use crate::c::{self, Other}; pub struct Thing;"),
        ("c.rs", "pub fn g() {} pub struct Other; mod tests { use super::*; }"),
        ("drivers/mod.rs", "pub mod timer;"),
        ("drivers/timer.rs", "pub fn now() -> u64 { 0 }"),
    ];
    assert_eq!(cycle_of(&files), None);
    let edges = graph_of(&files).edges();
    let a: Vec<&str> = edges[Path::new("a.rs")].iter().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(a, ["b.rs", "c.rs", "drivers/timer.rs"]);
}

#[test]
fn a_cycle_through_use_lines_is_found() {
    let files = [
        ("main.rs", "mod a; mod b;"),
        ("a.rs", "use crate::b::B; pub struct A;"),
        ("b.rs", "use crate::a::A; pub struct B;"),
    ];
    assert_eq!(cycle_of(&files).as_deref(), Some("a.rs -> b.rs -> a.rs"));
}

#[test]
fn a_cycle_through_paths_in_code_and_macros_is_found() {
    let files = [
        ("main.rs", "mod a; mod b; mod c;"),
        ("a.rs", "fn f() { crate::b::g(); }"),
        ("b.rs", "pub fn g() { log!(\"{}\", crate::c::h()); }"),
        ("c.rs", "pub fn h() -> u8 { let _: crate::a::Unit; 0 }"),
    ];
    assert_eq!(cycle_of(&files).as_deref(), Some("a.rs -> b.rs -> c.rs -> a.rs"));
}

#[test]
fn a_cycle_between_a_module_and_its_child_is_found() {
    let files = [
        ("main.rs", "mod process;"),
        ("process/mod.rs", "pub mod thread; use thread::Thread; pub struct Core;"),
        ("process/thread.rs", "use super::Core; pub struct Thread;"),
    ];
    assert_eq!(cycle_of(&files).as_deref(), Some("process/mod.rs -> process/thread.rs -> process/mod.rs"));
}

#[test]
fn a_cycle_through_a_module_brought_in_by_use_is_found() {
    let files = [
        ("main.rs", "mod drivers; mod process;"),
        ("drivers/mod.rs", "pub mod timer;"),
        ("drivers/timer.rs", "pub fn tick() { crate::process::wake(); }"),
        (
            "process/mod.rs",
            "use crate::drivers; use crate::drivers as d; pub fn wake() { drivers::timer::tick(); d::timer::tick(); }",
        ),
    ];
    assert_eq!(cycle_of(&files).as_deref(), Some("drivers/timer.rs -> process/mod.rs -> drivers/timer.rs"));
}

#[test]
fn path_attributes_and_exported_macros_are_followed() {
    let files = [
        ("main.rs", "#[path = \"arch/aarch64/mod.rs\"] mod arch; mod console; mod process;"),
        ("arch/aarch64/mod.rs", "pub mod mmu;"),
        ("arch/aarch64/mmu.rs", "pub fn map() { crate::println!(\"mapped\"); }"),
        ("console.rs", "use crate::process::Core; #[macro_export] macro_rules! println { () => {} }"),
        ("process/mod.rs", "use crate::arch::mmu; pub struct Core;"),
    ];
    assert_eq!(
        cycle_of(&files).as_deref(),
        Some("arch/aarch64/mmu.rs -> console.rs -> process/mod.rs -> arch/aarch64/mmu.rs")
    );
}

#[test]
fn an_import_that_points_up_or_a_file_in_no_layer_is_found() {
    let files = [
        ("main.rs", "mod drivers; mod process; mod stray;"),
        ("drivers/mod.rs", "pub mod timer;"),
        ("drivers/timer.rs", "pub fn tick() { crate::process::wake(); }"),
        ("process/mod.rs", "pub fn wake() {}"),
        ("stray.rs", ""),
    ];
    let layers: &[(&str, &[&str])] =
        &[("drivers", &["drivers/"]), ("core", &["process/"]), ("top", &["main.rs"])];
    let violations = layer_violations(&graph_of(&files).edges(), layers);
    assert_eq!(
        violations,
        [
            "drivers/timer.rs (drivers) imports process/mod.rs (core), a layer above",
            "stray.rs is in no layer"
        ]
    );
}

#[test]
fn the_library_is_a_crate_of_its_own_that_the_kernel_imports_by_name() {
    let files = [
        ("main.rs", "mod base; mod drivers;"),
        ("base.rs", "pub struct KernelBase;"),
        ("drivers/mod.rs", "use nucleus::policy::Rule; pub fn f() { nucleus::shared::g(); }"),
        ("lib.rs", "pub mod policy; pub mod shared; #[path = \"lib_base.rs\"] pub mod base;"),
        ("policy.rs", "use crate::base::Base; pub struct Rule;"),
        ("shared.rs", "pub fn g() {}"),
        ("lib_base.rs", "pub struct Base;"),
    ];
    let edges = graph_of(&files).edges();
    let targets = |file: &str| -> Vec<String> {
        edges[Path::new(file)].iter().map(|p| p.display().to_string()).collect()
    };
    // The library's `crate::base` is its own `base`, not the kernel's.
    assert_eq!(targets("policy.rs"), ["lib_base.rs"]);
    assert_eq!(targets("drivers/mod.rs"), ["policy.rs", "shared.rs"]);
    let layers: &[(&str, &[&str])] = &[
        ("base", &["base.rs", "lib_base.rs", "shared.rs"]),
        ("drivers", &["drivers/"]),
        ("policy", &["policy.rs"]),
        ("top", &["main.rs", "lib.rs"]),
    ];
    assert_eq!(
        layer_violations(&edges, layers),
        ["drivers/mod.rs (drivers) imports policy.rs (policy), a layer above"]
    );
}
