//! Loading: files, strings and directories in; resolved, typed profiles and located
//! diagnostics out.
//!
//! Five stages, in order, one function each ([`Loader::load`] runs them), each reporting
//! everything it finds before the next runs:
//! 1. **read** ([`Loader::read_unread`]): each file, bounded, without blocking, UTF-8;
//! 2. **parse** ([`Loader::read_and_parse`], which reads the parents it finds beside files
//!    and parses them in turn): the fast path types a complete profile straight from its
//!    text, or reads a child (`extends`) as a tree; anything else, and anything either
//!    declines, takes the full path: a JSON value ([`crate::yaml`]) checked, as written,
//!    against the profile schema ([`crate::schema`]). Out: [`Parsed`], a document per source;
//! 3. **resolve** ([`index`]: documents by id, duplicate ids, chains too deep, out:
//!    [`Indexed`]; [`type_children_on_fast_path`]: children laid over their parents' trees
//!    ([`crate::overlay`]); [`resolve`]: `extends` merged for the rest ([`crate::merge`]),
//!    unknown parents and cycles detected, out: [`Resolved`] values);
//! 4. **type** ([`type_resolved`]): each resolved value deserialized into a [`Profile`], then
//!    joined with those the fast paths typed ([`join_fast_typed`], out: [`Typed`]);
//! 5. **locate** ([`locate_all`]): every diagnostic's JSON pointer to file, line and column,
//!    through the chain of files a resolved profile came from.

use crate::files::{Directories, EXTENSIONS, Identity, Walk, identity};
use crate::merge::merge;
use crate::model::Profile;
use crate::overlay::{Side, overlay, overlay_tree};
use crate::schema;
use crate::yaml::tree::Tree;
use crate::yaml::{self, Read, SourceMap};
use keyway_diagnostics::{Code, Diagnostic, Label};
use keyway_stdx::{closest, parallel_map};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// The loader's maps hash ids, paths and source numbers: foldhash (seeded per process) costs a
// fraction of SipHash on a thousand files.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// One input text.
#[derive(Debug)]
pub struct Source {
    /// The name diagnostics use: the path as given, or the name passed to [`Loader::add_str`].
    pub name: String,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// The text (empty when it could not be read).
    pub text: String,
    /// The profile id it declares, when it was read far enough to know.
    pub declares: Option<String>,
    map: OnceLock<SourceMap>,
}

impl Source {
    fn new(name: String, path: Option<PathBuf>, text: String) -> Self {
        Source { name, path, text, declares: None, map: OnceLock::new() }
    }

    /// The pointer-to-span map, built on first use.
    pub fn source_map(&self) -> &SourceMap {
        self.map.get_or_init(|| SourceMap::build(&self.text))
    }
}

/// Index of a [`Source`] in [`Loaded::sources`].
pub type SourceId = usize;

/// A resolved, typed profile and where it came from.
#[derive(Debug)]
pub struct LoadedProfile {
    /// The profile, with `extends` applied.
    pub profile: Profile,
    /// The files it was merged from, most derived first: its own file, then its parent's...
    pub chain: Vec<SourceId>,
}

/// The result of loading: every profile that resolved, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    /// The inputs, in the order they were added (parents found beside a file come last).
    pub sources: Vec<Source>,
    /// The profiles that parsed, passed the schema and resolved, in source order.
    pub profiles: Vec<LoadedProfile>,
    /// Every problem found, located, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        keyway_diagnostics::has_errors(&self.diagnostics)
    }

    /// The profile with this id.
    pub fn profile(&self, id: &str) -> Option<&LoadedProfile> {
        self.profiles.iter().find(|p| p.profile.id == id)
    }

    /// The profile with this id, if nothing in the set makes it unsafe to use; otherwise the
    /// errors that do. A profile is unusable when an error is in a file of its chain, when
    /// another file declares its id or a parent's (it could be the one meant, with other
    /// endpoints), or when an error is in a file whose id is unknown (unreadable, unparsed: it
    /// could be such a file). Services and commands that send secrets use this, never the
    /// first profile of a set with errors. An id nothing declares gives no errors.
    pub fn usable(&self, id: &str) -> Result<&LoadedProfile, Vec<&Diagnostic>> {
        let found = self.profile(id);
        let chain_ids: Vec<&str> = match found {
            Some(p) => p.chain.iter().filter_map(|&s| self.sources[s].declares.as_deref()).collect(),
            None => vec![id],
        };
        let by_name: std::collections::HashMap<&str, &Source> =
            self.sources.iter().map(|s| (s.name.as_str(), s)).collect();
        let blocking: Vec<&Diagnostic> = self
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .filter(|d| match d.file.as_deref().and_then(|f| by_name.get(f)) {
                Some(source) => source.declares.as_deref().is_none_or(|declared| chain_ids.contains(&declared)),
                // Not a profile file (a directory that could not be walked, say): it could
                // have held anything.
                None => true,
            })
            .collect();
        match found {
            Some(profile) if blocking.is_empty() => Ok(profile),
            _ => Err(blocking),
        }
    }

    /// Locates a diagnostic about a resolved profile: finds the file in `chain` that wrote the
    /// value at the diagnostic's pointer (the most derived file with the deepest match) and
    /// sets its file and span.
    pub fn locate_in_chain(&self, diagnostic: Diagnostic, chain: &[SourceId]) -> Diagnostic {
        locate_in_chain(&self.sources, diagnostic, chain)
    }

    /// The text of the source a diagnostic names, for rendering.
    pub fn source_text(&self, name: &str) -> Option<&str> {
        self.sources.iter().find(|s| s.name == name).map(|s| s.text.as_str())
    }
}

/// Collects sources, then loads them all at once.
#[derive(Debug, Default)]
pub struct Loader {
    sources: Vec<Source>,
    /// Problems met while collecting (unreadable paths), by source when there is one.
    early: Found,
    /// The files added so far, so a file is read once.
    files: HashSet<PathBuf>,
    /// The files and directories walked or added so far, by identity.
    identities: std::collections::HashSet<Identity>,
    /// Files added but not read yet: they are read together, on the loader's threads.
    unread: Vec<SourceId>,
    /// Threads for the per-file and per-profile stages (0: as many as the machine has).
    threads: usize,
    /// Every document takes the full path (to compare the two).
    full_path_only: bool,
}

impl Loader {
    /// An empty loader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how many threads the per-file stages (parse, schema) and typing use: 0 (the
    /// default) means as many as the machine has. The result does not depend on it.
    pub fn threads(&mut self, threads: usize) -> &mut Self {
        self.threads = threads;
        self
    }

    /// Adds a file, or every `.yaml`/`.yml` file under a directory (recursively, sorted).
    pub fn add_path(&mut self, path: &Path) -> &mut Self {
        if path.is_dir() {
            let mut walk = Walk { seen: std::mem::take(&mut self.identities), ..Walk::default() };
            walk.walk(path);
            self.identities = walk.seen;
            self.early.extend(walk.problems.into_iter().map(|d| (None, d)));
            for file in walk.files {
                self.add_file(&file);
            }
        } else {
            // The same file named twice (`a.yaml`, `./a.yaml`, a link to it) is read once.
            if std::fs::metadata(path).ok().and_then(|m| identity(&m)).is_some_and(|id| !self.identities.insert(id)) {
                return self;
            }
            self.add_file(path);
        }
        self
    }

    /// Adds a profile given as text. `name` is what diagnostics call it.
    pub fn add_str(&mut self, name: impl Into<String>, text: impl Into<String>) -> &mut Self {
        self.sources.push(Source::new(name.into(), None, text.into()));
        self
    }

    fn add_file(&mut self, path: &Path) {
        if !self.files.insert(path.to_owned()) {
            return;
        }
        self.unread.push(self.sources.len());
        // A path's `Display` decodes it in lossy chunks; most paths are UTF-8 already.
        let name = path.to_str().map_or_else(|| path.display().to_string(), str::to_owned);
        self.sources.push(Source::new(name, Some(path.to_owned()), String::new()));
    }

    /// Reads the files added since the last call, on the loader's threads (a catalogue is a
    /// thousand small files, and each read is a few system calls). Returns those that could
    /// not be read, with why.
    fn read_unread(&mut self) -> Vec<(SourceId, Diagnostic)> {
        let ids = std::mem::take(&mut self.unread);
        let sources = &self.sources;
        let directories = Directories::of(ids.iter().filter_map(|&id| sources[id].path.as_deref()));
        let read =
            parallel_map(&ids, self.threads, |&id| sources[id].path.as_deref().map(|p| directories.read_text(p)));
        let mut failed = Vec::new();
        for (id, result) in ids.into_iter().zip(read) {
            match result {
                Some(Ok(text)) => self.sources[id].text = text,
                Some(Err(d)) => failed.push((id, d.in_file(self.sources[id].name.clone()))),
                None => {}
            }
        }
        failed
    }

    /// Parses, checks, resolves and types every source.
    pub fn load(self) -> Loaded {
        self.load_counting().0
    }

    /// [`Loader::load`], and what its fast paths did. The five stages of the module doc, one
    /// function each; what each hands the next is typed, and every problem any of them finds
    /// is collected in `found`, by source, to be located at the end.
    fn load_counting(mut self) -> (Loaded, FastPathCounts) {
        let mut found: Found = std::mem::take(&mut self.early);
        let threads = self.threads;
        let parsed = self.read_and_parse(&mut found);
        let mut indexed = index(&mut self.sources, parsed, &mut found);
        let trees_read = type_children_on_fast_path(&self.sources, &mut indexed, threads, &mut found);
        let resolved = resolve(&self.sources, &indexed, threads, &mut found);
        let typed_from_values = type_resolved(&self.sources, resolved, threads, &mut found);
        let typed = join_fast_typed(indexed, typed_from_values);
        let diagnostics = locate_all(&self.sources, found);
        let counts = FastPathCounts { typed: typed.fast_typed, trees_read };
        (Loaded { sources: self.sources, profiles: typed.profiles, diagnostics }, counts)
    }

    /// Stages 1 and 2: reads every source and parses it (fast path or full, with the schema),
    /// finding parents beside files as needed: each parent found is read and parsed in turn.
    fn read_and_parse(&mut self, found: &mut Found) -> Parsed {
        let fast = !self.full_path_only;
        let mut docs: Vec<Option<Document>> = Vec::new();
        let mut unreadable: HashSet<SourceId> = HashSet::default();
        loop {
            for (id, d) in self.read_unread() {
                unreadable.insert(id);
                found.push((Some(id), d));
            }
            // Every source before `docs.len()` is parsed already.
            let ids: Vec<SourceId> = (docs.len()..self.sources.len()).collect();
            let sources = &self.sources;
            let unreadable = &unreadable;
            let parsed = parallel_map(&ids, self.threads, |&id| {
                let mut found = Vec::new();
                let doc =
                    if unreadable.contains(&id) { None } else { parse_source(id, &sources[id], fast, &mut found) };
                (doc, found)
            });
            docs.reserve(parsed.len());
            for (doc, problems) in parsed {
                docs.push(doc);
                found.extend(problems);
            }
            if !self.add_missing_parents(&docs) {
                break;
            }
        }
        Parsed { docs }
    }

    /// For documents read from files whose parent is not loaded, loads `<parent>.yaml` or
    /// `.yml` from the same directory. Returns whether anything was added.
    fn add_missing_parents(&mut self, docs: &[Option<Document>]) -> bool {
        let known: HashSet<&str> = docs.iter().flatten().map(|d| d.id.as_str()).collect();
        let mut wanted = Vec::new();
        for doc in docs.iter().flatten() {
            let (Some(parent), Some(path)) = (&doc.extends, &self.sources[doc.source].path) else {
                continue;
            };
            if known.contains(&parent.as_str()) || !is_id(parent) {
                continue;
            }
            let dir = path.parent().unwrap_or(Path::new("."));
            if let Some(file) = EXTENSIONS.iter().map(|ext| dir.join(format!("{parent}.{ext}"))).find(|f| f.is_file()) {
                wanted.push(file);
            }
        }
        let before = self.sources.len();
        for file in wanted {
            self.add_file(&file);
        }
        self.sources.len() > before
    }
}

/// Problems found so far, by the source each is about (`None`: no one source, such as a
/// directory that could not be walked). Located at the end, by [`locate_all`].
type Found = Vec<(Option<SourceId>, Diagnostic)>;

/// What the fast paths did in one load, for [`compare_fast_path`].
#[derive(Debug, Clone, Copy)]
struct FastPathCounts {
    /// Profiles a fast path typed.
    typed: usize,
    /// Children read as trees, typed or not.
    trees_read: usize,
}

/// Stage 2's output: one document per source, in source order; `None` where the source gave
/// none (unreadable, unparsable, or without a usable id: each reported).
struct Parsed {
    docs: Vec<Option<Document>>,
}

/// The documents indexed by id (stage 3 begins): the first source to declare an id is the one
/// chosen for it.
struct Indexed {
    docs: Vec<Option<Document>>,
    by_id: HashMap<String, SourceId>,
}

/// A profile resolved by the full path (stage 3's output): its merged value and the files it
/// came from, most derived first.
struct Resolved<'a> {
    source: SourceId,
    value: Cow<'a, Value>,
    chain: Vec<SourceId>,
}

/// Stage 4's output: every profile typed, in source order.
struct Typed {
    profiles: Vec<LoadedProfile>,
    /// How many of them a fast path typed.
    fast_typed: usize,
}

/// Stage 3, first: indexes the documents by id (an id declared twice is reported, and neither
/// is used), and refuses chains longer than profiles may inherit before anything walks them
/// (the resolver recurses once per level, and each level merges a whole profile).
fn index(sources: &mut [Source], parsed: Parsed, found: &mut Found) -> Indexed {
    let Parsed { mut docs } = parsed;
    let mut by_id: HashMap<String, SourceId> = HashMap::default();
    for doc in docs.iter().flatten() {
        sources[doc.source].declares = Some(doc.id.clone());
        match by_id.get(doc.id.as_str()) {
            Some(&first) => {
                let first_span = sources[first].source_map().value(&sources[first].text, "/id");
                let mut d = Diagnostic::new(
                    Code::DuplicateProfileId,
                    format!("profile id `{}` is defined twice", doc.id),
                )
                .at_pointer("/id")
                .with_help(
                    "give each profile its own id; until then neither is used, since either could be the one meant",
                );
                if let Some(span) = first_span {
                    d = d.with_label(Label {
                        file: Some(sources[first].name.clone()),
                        span,
                        message: "first defined here".into(),
                    });
                }
                found.push((Some(doc.source), d));
            }
            None => {
                by_id.insert(doc.id.clone(), doc.source);
            }
        }
    }
    for (source, depth) in too_deep_chains(&docs, &by_id) {
        found.push((
            Some(source),
            Diagnostic::new(
                Code::ExtendsTooDeep,
                format!(
                    "this profile is {depth} `extends` levels from its root; at most {MAX_EXTENDS_DEPTH} are allowed"
                ),
            )
            .at_pointer("/extends")
            .with_help("inherit from a profile nearer the root; real hierarchies are a few levels deep"),
        ));
        if let Some(doc) = &mut docs[source] {
            doc.has_schema_errors = true;
            doc.tree = None;
        }
    }
    Indexed { docs, by_id }
}

/// Stage 3, the fast path of `extends`: each child read as a tree is laid over its parent's
/// tree and typed, when the parent is a complete profile typed on the fast path (and then,
/// a level at a time, children of children); the others take the full path from here. On the
/// loader's threads. Returns how many children were read as trees.
fn type_children_on_fast_path(sources: &[Source], indexed: &mut Indexed, threads: usize, found: &mut Found) -> usize {
    let Indexed { docs, by_id } = indexed;
    let children: Vec<SourceId> = docs.iter().flatten().filter(|d| d.tree.is_some()).map(|d| d.source).collect();
    if children.is_empty() {
        return 0;
    }
    let parent_of = |child: &Document| {
        let parent = *by_id.get(child.extends.as_deref()?)?;
        let chosen = by_id.get(child.id.as_str()) == Some(&child.source);
        (chosen && docs[parent].as_ref().is_some_and(|p| p.typed.is_some())).then_some(parent)
    };
    let mut parents: Vec<SourceId> = children.iter().filter_map(|&c| docs[c].as_ref().and_then(parent_of)).collect();
    parents.sort_unstable();
    parents.dedup();
    let parent_trees = parallel_map(&parents, threads, |&p| Tree::read(&sources[p].text));
    let tree_of = |p: SourceId| parents.binary_search(&p).ok().and_then(|i| parent_trees[i].as_ref());
    let typed = parallel_map(&children, threads, |&c| {
        let child = docs[c].as_ref()?;
        let parent = parent_of(child)?;
        let profile: Profile = overlay(
            Side { tree: tree_of(parent)?, text: &sources[parent].text },
            Side { tree: child.tree.as_ref()?, text: &sources[c].text },
        )
        .ok()?;
        schema::typed_profile_holds_patterns(&profile).then(|| (Box::new(profile), parent))
    });
    let mut declined = Vec::new();
    for (c, typed) in children.iter().zip(typed) {
        let Some(doc) = &mut docs[*c] else { continue };
        match typed {
            Some((profile, parent)) => {
                doc.typed = Some(profile);
                doc.typed_over = Some(parent);
            }
            None => declined.push(*c),
        }
    }
    // Children of children, a level at a time: each parent typed over its own parent is
    // merged with it into an owned tree, and the child laid over that.
    let mut merged: HashMap<SourceId, Tree> = HashMap::default();
    let mut tried: HashSet<SourceId> = HashSet::default();
    loop {
        let typed_child = |p: SourceId| docs[p].as_ref().and_then(|d| d.typed.as_ref().and(d.typed_over));
        let parent_of = |c: SourceId| {
            let child = docs[c].as_ref()?;
            let parent = *by_id.get(child.extends.as_deref()?)?;
            (by_id.get(child.id.as_str()) == Some(&c) && typed_child(parent).is_some()).then_some(parent)
        };
        let waiting: Vec<SourceId> =
            declined.iter().copied().filter(|&c| !tried.contains(&c) && parent_of(c).is_some()).collect();
        if waiting.is_empty() {
            break;
        }
        tried.extend(waiting.iter().copied());
        let mut parents: Vec<SourceId> =
            waiting.iter().filter_map(|&c| parent_of(c)).filter(|p| !merged.contains_key(p)).collect();
        parents.sort_unstable();
        parents.dedup();
        let trees = parallel_map(&parents, threads, |&p| {
            let base = typed_child(p)?;
            let base = match merged.get(&base) {
                Some(tree) => Side { tree, text: "" },
                None => Side { tree: tree_of(base)?, text: &sources[base].text },
            };
            let own = Side { tree: docs[p].as_ref()?.tree.as_ref()?, text: &sources[p].text };
            overlay_tree(base, own).ok()
        });
        merged.extend(parents.into_iter().zip(trees).filter_map(|(p, tree)| Some((p, tree?))));
        let typed = parallel_map(&waiting, threads, |&c| {
            let parent = parent_of(c)?;
            let child = Side { tree: docs[c].as_ref()?.tree.as_ref()?, text: &sources[c].text };
            let profile: Profile = overlay(Side { tree: merged.get(&parent)?, text: "" }, child).ok()?;
            schema::typed_profile_holds_patterns(&profile).then(|| (Box::new(profile), parent))
        });
        for (c, typed) in waiting.into_iter().zip(typed) {
            let (Some((profile, parent)), Some(doc)) = (typed, &mut docs[c]) else { continue };
            doc.typed = Some(profile);
            doc.typed_over = Some(parent);
        }
        // The children typed in this round are parents the next one may lay over.
        declined.retain(|&c| docs[c].as_ref().is_some_and(|d| d.typed.is_none()));
    }
    for &c in &children {
        if let Some(doc) = &mut docs[c] {
            doc.tree = None;
        }
    }
    let checked = parallel_map(&declined, threads, |&c| {
        let mut problems = Vec::new();
        (full_path(c, &sources[c], &mut problems), problems)
    });
    for (c, (doc, problems)) in declined.into_iter().zip(checked) {
        // The document exists on the full path too: the fast reader read it as a mapping
        // with an id.
        docs[c] = doc;
        found.extend(problems);
    }
    children.len()
}

/// Stage 3, the full path: merges `extends` for every chosen document no fast path typed.
/// Parents typed on the fast path are read as values first, on the loader's threads (the
/// resolver would read them one at a time).
fn resolve<'a>(sources: &'a [Source], indexed: &'a Indexed, threads: usize, found: &mut Found) -> Vec<Resolved<'a>> {
    let Indexed { docs, by_id } = indexed;
    let parents: Vec<&Document> = {
        let mut seen = HashSet::default();
        docs.iter()
            .flatten()
            .filter(|d| d.typed.is_none())
            .filter_map(|d| d.extends.as_deref().and_then(|p| by_id.get(p)))
            .filter(|&&p| seen.insert(p))
            .filter_map(|&p| docs[p].as_ref().filter(|d| d.value.get().is_none()))
            .collect()
    };
    parallel_map(&parents, threads, |doc| {
        // A failure is left for the resolver to meet and report.
        if let Ok(value) = yaml::parse(&sources[doc.source].text) {
            let _ = doc.value.set(value);
        }
    });
    let mut resolver = Resolver { sources, docs, by_id, state: HashMap::default(), diags: Vec::new() };
    let mut resolved = Vec::new();
    for doc in docs.iter().flatten() {
        // Profiles typed on the fast path are complete already.
        if by_id.get(doc.id.as_str()) != Some(&doc.source) || doc.has_schema_errors || doc.typed.is_some() {
            continue;
        }
        if let Some((value, chain)) = resolver.resolve(doc.source, &mut Vec::new()) {
            resolved.push(Resolved { source: doc.source, value, chain });
        }
    }
    found.extend(resolver.diags);
    resolved
}

/// Stage 4: types each resolved profile; a type error is located in the file of its chain
/// that wrote the value. The profiles come back with their sources.
fn type_resolved(
    sources: &[Source],
    resolved: Vec<Resolved<'_>>,
    threads: usize,
    found: &mut Found,
) -> Vec<(SourceId, LoadedProfile)> {
    let typed = parallel_map(&resolved, threads, |r| {
        // Plain serde first; the path-tracking deserializer only to word an error.
        Profile::deserialize(r.value.as_ref())
            .or_else(|_| serde_path_to_error::deserialize::<_, Profile>(r.value.as_ref()))
    });
    let mut profiles = Vec::with_capacity(resolved.len());
    for (Resolved { source, chain, .. }, typed) in resolved.into_iter().zip(typed) {
        match typed {
            Ok(profile) => profiles.push((source, LoadedProfile { profile, chain })),
            Err(e) => found.push((Some(source), locate_type_error(sources, typed_error(&e), &chain))),
        }
    }
    profiles
}

/// Stage 4, last: the profiles the fast paths typed joined to those typed from resolved
/// values, in source order.
fn join_fast_typed(indexed: Indexed, mut profiles: Vec<(SourceId, LoadedProfile)>) -> Typed {
    let Indexed { mut docs, by_id } = indexed;
    let chosen: HashSet<SourceId> = by_id.values().copied().collect();
    let mut fast_typed = 0;
    for source in 0..docs.len() {
        if !chosen.contains(&source) {
            continue;
        }
        let chain = chain(&docs, source);
        if let Some(profile) = docs[source].as_mut().and_then(|d| d.typed.take()) {
            profiles.push((source, LoadedProfile { profile: *profile, chain }));
            fast_typed += 1;
        }
    }
    profiles.sort_by_key(|(source, _)| *source);
    Typed { profiles: profiles.into_iter().map(|(_, p)| p).collect(), fast_typed }
}

/// A type error in a resolved profile, located in the file of `chain` that wrote the value;
/// a required key a child removed with `null` points at the `null`.
fn locate_type_error(sources: &[Source], d: Diagnostic, chain: &[SourceId]) -> Diagnostic {
    match nulled_by(sources, &d, chain) {
        Some(s) => {
            let field = missing_field(&d.message).unwrap_or_default();
            let at = format!("{}/{}", d.pointer.as_deref().unwrap_or(""), yaml::escape_pointer_token(&field));
            let span = sources[s].source_map().key(&sources[s].text, &at);
            let mut d = locate(&sources[s], d);
            d.span = span.or(d.span);
            d
        }
        None => locate_in_chain(sources, d, chain),
    }
}

/// Stage 5: turns every pointer into a file, line and column (building source maps only for
/// files with something to report), in source order, then by position and code.
fn locate_all(sources: &[Source], found: Found) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = found
        .into_iter()
        .map(|(source, d)| match source {
            Some(s) => locate(&sources[s], d),
            None => d,
        })
        .collect();
    let order: HashMap<&str, usize> = sources.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    diagnostics
        .sort_by_key(|d| (d.file.as_deref().and_then(|f| order.get(f)).copied(), d.span.map(|s| s.start), d.code));
    diagnostics
}

/// A parsed document with the few fields loading needs before typing.
#[derive(Debug)]
struct Document {
    source: SourceId,
    id: String,
    extends: Option<String>,
    /// The document as written: read by the full path; for a profile typed on the fast path,
    /// read from its text only if a child extends it.
    value: OnceLock<Value>,
    /// The profile, when a fast path typed it.
    typed: Option<Box<Profile>>,
    /// The parent a child typed on the fast path was laid over.
    typed_over: Option<SourceId>,
    /// A child (`extends`) read as a tree, for the fast path of `extends`.
    tree: Option<Tree>,
    has_schema_errors: bool,
}

impl Document {
    /// A document with nothing read but its id and parent.
    fn new(source: SourceId, id: String, extends: Option<String>) -> Self {
        Document {
            source,
            id,
            extends,
            value: OnceLock::new(),
            typed: None,
            typed_over: None,
            tree: None,
            has_schema_errors: false,
        }
    }
}

/// The most `extends` levels between a profile and its root (a child of a root is 1 level).
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// The chosen documents whose chain to its root is longer than [`MAX_EXTENDS_DEPTH`], with
/// their depth, in source order. Each document's depth is found once (memoized, without
/// recursion), so this is linear in the number of documents; cycles are left to the resolver.
fn too_deep_chains(docs: &[Option<Document>], by_id: &HashMap<String, SourceId>) -> Vec<(SourceId, usize)> {
    const UNKNOWN: usize = usize::MAX;
    let mut depth = vec![UNKNOWN; docs.len()];
    let mut on_path = vec![false; docs.len()];
    let mut path = Vec::new();
    for start in 0..docs.len() {
        let mut at = start;
        // Walk up until a document of known depth, a root, a missing parent or a cycle.
        let base = loop {
            if depth[at] != UNKNOWN {
                break depth[at];
            }
            let parent = docs[at]
                .as_ref()
                .filter(|d| by_id.get(d.id.as_str()) == Some(&at))
                .and_then(|d| d.extends.as_deref())
                .and_then(|p| by_id.get(p))
                .copied();
            let Some(parent) = parent else {
                depth[at] = 0;
                break 0;
            };
            if on_path[at] {
                // A cycle, which the resolver reports: its members count as roots here.
                while let Some(member) = path.pop() {
                    on_path[member] = false;
                    depth[member] = 0;
                    if member == at {
                        break;
                    }
                }
                break 0;
            }
            on_path[at] = true;
            path.push(at);
            at = parent;
        };
        let mut d = base;
        while let Some(member) = path.pop() {
            on_path[member] = false;
            d += 1;
            depth[member] = d;
        }
    }
    depth.into_iter().enumerate().filter(|&(_, d)| d != UNKNOWN && d > MAX_EXTENDS_DEPTH).collect()
}

/// The files of the profile typed on a fast path from `source`, most derived first: it, the
/// parent it was laid over, that one's, and so on.
fn chain(docs: &[Option<Document>], source: SourceId) -> Vec<SourceId> {
    let mut chain = vec![source];
    let mut at = source;
    // Bounded: a parent is typed before its children, so no chain loops back.
    while let Some(parent) = docs[at].as_ref().and_then(|d| d.typed_over).filter(|_| chain.len() <= docs.len()) {
        chain.push(parent);
        at = parent;
    }
    chain
}

/// The fast paths: a complete profile (no `extends` or `replace`) typed straight from the text,
/// in a file named after its id, that holds the schema's patterns; and a child (`extends`) read
/// as a tree, typed later over its parent's ([`crate::overlay`]). Anything else (and anything
/// wrong) takes the full path, which reports it: with the JSON value read here when there is
/// one. A test loads every profile and corpus file both ways and compares.
fn read_source(src: &Source, fast: bool) -> Result<Read<Profile>, Box<Diagnostic>> {
    if !fast {
        return yaml::parse(&src.text).map(Read::Value);
    }
    match yaml::parse_typed::<Profile>(&src.text, &["extends"], &["replace"])? {
        Read::Typed(profile) => {
            if named_after(src, &profile.id) && schema::typed_profile_holds_patterns(&profile) {
                Ok(Read::Typed(profile))
            } else {
                yaml::parse(&src.text).map(Read::Value)
            }
        }
        other => Ok(other),
    }
}

/// Whether `src` is not a file, or a file named after `id` (the full path reports the others).
fn named_after(src: &Source, id: &str) -> bool {
    src.path.as_deref().and_then(Path::file_stem).and_then(|s| s.to_str()).is_none_or(|stem| stem == id)
}

/// A child read as a tree, if its `id` and `extends` are as the schema wants them (in a file
/// named after its id); otherwise it takes the full path.
fn patch_document(source: SourceId, src: &Source, tree: Tree) -> Option<Document> {
    let text = src.text.as_str();
    let id = tree.get(text, "id")?.as_str(text).filter(|id| is_id(id) && named_after(src, id))?.to_owned();
    let extends = tree.get(text, "extends")?.as_str(text).filter(|p| is_id(p))?.to_owned();
    Some(Document { tree: Some(tree), ..Document::new(source, id, Some(extends)) })
}

fn parse_source(source: SourceId, src: &Source, fast: bool, diags: &mut Found) -> Option<Document> {
    match read_source(src, fast) {
        Ok(Read::Typed(profile)) => {
            let id = profile.id.clone();
            Some(Document { typed: Some(Box::new(profile)), ..Document::new(source, id, None) })
        }
        Ok(Read::Tree(tree)) => patch_document(source, src, tree).or_else(|| full_path(source, src, diags)),
        Ok(Read::Value(value)) => check_value(source, src, Ok(value), diags),
        Err(d) => check_value(source, src, Err(d), diags),
    }
}

/// The full path for a source: read as a JSON value, then [`check_value`].
fn full_path(source: SourceId, src: &Source, diags: &mut Found) -> Option<Document> {
    check_value(source, src, yaml::parse(&src.text), diags)
}

/// Checks a document read as a JSON value (or reports why it could not be read) against the
/// schema, and the rest that needs no other document (its id and file name, `replace`
/// without `extends`).
fn check_value(
    source: SourceId,
    src: &Source,
    read: Result<Value, Box<Diagnostic>>,
    diags: &mut Found,
) -> Option<Document> {
    let push = |diags: &mut Vec<_>, d: Diagnostic| diags.push((Some(source), d.in_file(src.name.clone())));
    let value = match read {
        Ok(value) => value,
        Err(d) => {
            push(diags, *d);
            return None;
        }
    };
    if !value.is_object() {
        let what = if value.is_null() { "the document is empty" } else { "the top level must be a mapping" };
        push(
            diags,
            Diagnostic::new(Code::NotAMapping, format!("not a profile: {what}"))
                .at_pointer("")
                .with_help("a profile is a mapping that starts with `id:`; see `keyway schema`"),
        );
        return None;
    }
    let schema_errors = schema::check(&value);
    let has_schema_errors = schema_errors.iter().any(Diagnostic::is_error);
    let id_reported = schema_errors.iter().any(|d| {
        d.is_error()
            && (d.pointer.as_deref() == Some("/id") || (d.code == Code::MissingKey && d.message.contains("`id`")))
    });
    for d in schema_errors {
        push(diags, d);
    }
    // Without a usable id the document cannot take part in resolution. The schema says why
    // for most; a child's `id: null` (children may null out keys) it accepts, so it is said
    // here: a file is never dropped in silence.
    let Some(id) = value.get("id").and_then(Value::as_str).filter(|id| is_id(id)) else {
        if !id_reported {
            let found = match value.get("id") {
                None => "no `id`".to_owned(),
                Some(Value::Null) => "`id: null`".to_owned(),
                Some(other) => format!("the `id` {other}"),
            };
            push(
                diags,
                Diagnostic::new(
                    Code::InvalidValue,
                    format!("every profile needs its own id, and this one has {found}"),
                )
                .at_pointer(if value.get("id").is_some() { "/id" } else { "" })
                .with_help("give it an id like `acme-crm` (lowercase letters, digits and dashes), the file's name"),
            );
        }
        return None;
    };
    let id = id.to_owned();
    if let Some(stem) = src.path.as_deref().and_then(Path::file_stem).and_then(|s| s.to_str()) {
        if stem != id {
            push(
                diags,
                Diagnostic::new(
                    Code::IdFileMismatch,
                    format!("profile id `{id}` does not match its file name `{stem}`"),
                )
                .at_pointer("/id")
                .with_help(format!("rename the file to `{id}.yaml`, so `extends: {id}` can find it")),
            );
        }
    }
    let extends = value.get("extends").and_then(Value::as_str).map(str::to_owned);
    if extends.is_none() && value.get("replace").is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty())) {
        push(
            diags,
            Diagnostic::new(Code::BadReplacePointer, "`replace` has no effect in a profile without `extends`")
                .at_pointer("/replace")
                .with_help("remove `replace`, or add `extends: PARENT`"),
        );
    }
    Some(Document { value: OnceLock::from(value), has_schema_errors, ..Document::new(source, id, extends) })
}

/// Loads `files` (name, text) with the fast paths and with the full path only, and compares
/// everything that comes out: the profiles (with the files each came from) and every
/// diagnostic. `Ok` gives how many profiles a fast path typed; `Err`, the first difference.
/// When no fast path typed or read anything, every document took the full path from the start
/// and there is nothing to compare. For tests and fuzzing.
#[doc(hidden)]
pub fn compare_fast_path(files: &[(&str, &str)]) -> Result<usize, String> {
    let load = |full_path_only| {
        let mut loader = Loader { full_path_only, ..Loader::default() };
        for (name, text) in files {
            loader.sources.push(Source::new((*name).to_owned(), Some(PathBuf::from(name)), (*text).to_owned()));
        }
        loader.load_counting()
    };
    let (fast, counts) = load(false);
    if counts.typed == 0 && counts.trees_read == 0 {
        return Ok(0);
    }
    let (full, ..) = load(true);
    if fast.diagnostics != full.diagnostics {
        return Err(format!(
            "the paths report differently:\nfast: {:#?}\nfull: {:#?}",
            fast.diagnostics, full.diagnostics
        ));
    }
    if fast.profiles.len() != full.profiles.len() {
        return Err(format!(
            "the fast paths gave {} profiles, the full path {}",
            fast.profiles.len(),
            full.profiles.len()
        ));
    }
    for (a, b) in fast.profiles.iter().zip(&full.profiles) {
        if a.profile != b.profile || a.chain != b.chain {
            return Err(format!(
                "the paths give different profiles:\nfast: {:#?} from {:?}\nfull: {:#?} from {:?}",
                a.profile, a.chain, b.profile, b.chain
            ));
        }
    }
    Ok(counts.typed)
}

fn is_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[derive(Clone, Copy, PartialEq)]
enum Visit {
    InProgress,
    Failed,
}

struct Resolver<'a> {
    sources: &'a [Source],
    docs: &'a [Option<Document>],
    by_id: &'a HashMap<String, SourceId>,
    state: HashMap<SourceId, Visit>,
    diags: Found,
}

impl<'a> Resolver<'a> {
    /// The merged value and chain of `source`, or `None` (reported) when it cannot resolve.
    fn resolve(&mut self, source: SourceId, path: &mut Vec<SourceId>) -> Option<(Cow<'a, Value>, Vec<SourceId>)> {
        let docs: &'a [Option<Document>] = self.docs;
        let doc = docs[source].as_ref()?;
        match self.state.get(&source) {
            Some(Visit::Failed) => return None,
            Some(Visit::InProgress) => {
                let start = path.iter().position(|s| *s == source).unwrap_or(0);
                let cycle: Vec<&str> = path[start..]
                    .iter()
                    .chain(std::iter::once(&source))
                    .filter_map(|s| self.docs[*s].as_ref().map(|d| d.id.as_str()))
                    .collect();
                for member in &path[start..] {
                    self.state.insert(*member, Visit::Failed);
                    self.diags.push((
                        Some(*member),
                        Diagnostic::new(Code::ExtendsCycle, format!("`extends` forms a cycle: {}", cycle.join(" -> ")))
                            .at_pointer("/extends")
                            .with_help("a profile cannot inherit from itself; break the cycle"),
                    ));
                }
                return None;
            }
            None => {}
        }
        let Some(parent_id) = &doc.extends else {
            return self.value_of(doc).map(|value| (Cow::Borrowed(value), vec![source]));
        };
        let Some(&parent) = self.by_id.get(parent_id.as_str()) else {
            let known: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
            let mut d =
                Diagnostic::new(Code::UnknownParent, format!("`extends` names `{parent_id}`, which is not loaded"))
                    .at_pointer("/extends");
            d = match closest(parent_id, known) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help(format!("load `{parent_id}.yaml` too, or put it beside this file")),
            };
            self.diags.push((Some(source), d));
            self.state.insert(source, Visit::Failed);
            return None;
        };
        if self.docs[parent].as_ref().is_some_and(|p| p.has_schema_errors) {
            // The parent's own errors are reported; the child cannot be resolved without it.
            self.state.insert(source, Visit::Failed);
            return None;
        }
        self.state.insert(source, Visit::InProgress);
        path.push(source);
        let parent_resolved = self.resolve(parent, path);
        path.pop();
        let Some((parent_value, parent_chain)) = parent_resolved else {
            self.state.insert(source, Visit::Failed);
            return None;
        };
        self.state.remove(&source);
        let Some(own) = self.value_of(doc) else {
            self.state.insert(source, Visit::Failed);
            return None;
        };
        let (value, merge_diags) = merge(&parent_value, own);
        let failed = merge_diags.iter().any(Diagnostic::is_error);
        self.diags.extend(merge_diags.into_iter().map(|d| (Some(source), d)));
        if failed {
            self.state.insert(source, Visit::Failed);
            return None;
        }
        let mut chain = vec![source];
        chain.extend(parent_chain);
        Some((Cow::Owned(value), chain))
    }
}

impl<'a> Resolver<'a> {
    /// The document as written. A profile typed on the fast path is read again, as a value,
    /// only when a child needs it; that reading cannot fail where the first succeeded, but
    /// if it did, its diagnostic is reported.
    fn value_of(&mut self, doc: &'a Document) -> Option<&'a Value> {
        if let Some(value) = doc.value.get() {
            return Some(value);
        }
        let source = &self.sources[doc.source];
        match yaml::parse(&source.text) {
            Ok(value) => Some(doc.value.get_or_init(|| value)),
            Err(d) => {
                self.diags.push((Some(doc.source), d.in_file(source.name.clone())));
                None
            }
        }
    }
}

/// The field a "missing field `x`" message names.
fn missing_field(message: &str) -> Option<String> {
    message.strip_prefix("missing field `").and_then(|m| m.split('`').next()).map(str::to_owned)
}

/// For a missing key, the file in the chain that set it to `null`, if one did.
fn nulled_by(sources: &[Source], d: &Diagnostic, chain: &[SourceId]) -> Option<SourceId> {
    if d.code != Code::MissingKey {
        return None;
    }
    let field = missing_field(&d.message)?;
    let at = format!("{}/{}", d.pointer.as_deref().unwrap_or(""), yaml::escape_pointer_token(&field));
    chain.iter().copied().find(|s| sources[*s].source_map().contains(&at))
}

/// Maps a typed-deserialization error to a diagnostic with a pointer.
fn typed_error(error: &serde_path_to_error::Error<serde_json::Error>) -> Diagnostic {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in error.path().iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => pointer.push_str(&yaml::escape_pointer_token(key)),
            Segment::Unknown => pointer.push('?'),
        }
    }
    let message = error.inner().to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    let code = if message.starts_with("unknown field") {
        Code::UnknownKey
    } else if message.starts_with("missing field") {
        Code::MissingKey
    } else if message.starts_with("invalid type") {
        Code::WrongType
    } else {
        Code::InvalidValue
    };
    // For a missing field, serde's path already ends at the object that lacks it.
    Diagnostic::new(code, message).at_pointer(pointer)
}

/// Sets the span of a diagnostic about one source from its pointer, and its file name.
fn locate(source: &Source, mut d: Diagnostic) -> Diagnostic {
    if d.file.is_none() {
        d.file = Some(source.name.clone());
    }
    if d.span.is_none() {
        if let Some(pointer) = &d.pointer {
            let map = source.source_map();
            d.span =
                if points_at_key(d.code) { map.key(&source.text, pointer) } else { map.value(&source.text, pointer) };
        }
    }
    d
}

fn locate_in_chain(sources: &[Source], d: Diagnostic, chain: &[SourceId]) -> Diagnostic {
    let pointer = d.pointer.clone().unwrap_or_default();
    // The file that wrote the deepest ancestor of the pointer; ties go to the most derived.
    let mut best: Option<(usize, SourceId)> = None;
    for &s in chain {
        let map = sources[s].source_map();
        let mut p = pointer.as_str();
        loop {
            if map.contains(p) {
                if best.is_none_or(|(depth, _)| p.len() > depth) {
                    best = Some((p.len(), s));
                }
                break;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
    }
    match best.map(|(_, s)| s).or_else(|| chain.first().copied()) {
        Some(s) => locate(&sources[s], d),
        None => d,
    }
}

/// Codes whose natural place is the key rather than the value.
fn points_at_key(code: Code) -> bool {
    matches!(code, Code::UnknownKey | Code::MissingKey)
}

/// Loads files and directories.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    let mut loader = Loader::new();
    for p in paths {
        loader.add_path(p.as_ref());
    }
    loader.load()
}

/// Loads one profile from text (its parent, if any, must be loaded with it: use [`Loader`]).
pub fn load_str(name: &str, text: &str) -> Loaded {
    let mut loader = Loader::new();
    loader.add_str(name, text);
    loader.load()
}
