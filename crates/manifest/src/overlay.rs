//! `extends` on the fast path: a child's tree laid over its parent's and typed through serde as
//! the merged profile, without building the merged document.
//!
//! The rules are [`crate::merge`]'s (mappings merge, other values replace, `null` removes,
//! `replace` pointers take the child's value outright). This reads only what it is sure of and
//! declines the rest, for the full path to merge JSON values and word any diagnostic:
//! placements (`place:`), a `null` that removes nothing (it may name an unknown key, which the
//! schema refuses), `replace` pointers that are malformed, missing from the parent or pass
//! through a list, an enum written as a mapping on both sides, and any type error. A test
//! loads every profile and corpus file, and variations of them, both ways and compares.
//!
//! What it accepts is valid against the schema's patch form: every value the child writes,
//! other than a `null` that removes a parent's entry, ends up in the merged profile and is typed
//! there, where every struct refuses unknown keys; `id`, `extends` and `replace` are checked by
//! the caller and here.

use crate::yaml::Declined;
use crate::yaml::tree::{Text, Tree};
use serde::de::{self, DeserializeSeed, Visitor};
use std::collections::HashMap;

/// One side of the merge: a document's tree and the text its strings are in.
#[derive(Clone, Copy)]
pub(crate) struct Side<'t> {
    pub(crate) tree: &'t Tree,
    pub(crate) text: &'t str,
}

/// Types `child` laid over `parent`, or declines. The child's `replace` is consumed; its `id`
/// and `extends` are its own, as in the full path.
pub(crate) fn overlay<T: de::DeserializeOwned>(parent: Side<'_>, child: Side<'_>) -> Result<T, Declined> {
    let replace = replace_pointers(parent, child)?;
    T::deserialize(Node::root(parent, child, &replace)?)
}

/// `child` laid over `parent` as a document, every string owned (its side's text is then
/// `""`): the parent a child of `child` is laid over. Declines what [`overlay`] declines, but
/// types nothing: typing the grandchild over it does.
pub(crate) fn overlay_tree(parent: Side<'_>, child: Side<'_>) -> Result<Tree, Declined> {
    let replace = replace_pointers(parent, child)?;
    Tree::read_owned(Node::root(parent, child, &replace)?)
}

/// The child's `replace` pointers as unescaped tokens, each of which must name a value the
/// parent has through mappings only.
fn replace_pointers(parent: Side<'_>, child: Side<'_>) -> Result<Vec<Vec<String>>, Declined> {
    let Some(list) = child.tree.get(child.text, "replace") else { return Ok(Vec::new()) };
    let Tree::Seq(items) = list else { return Err(Declined) };
    let mut pointers = Vec::with_capacity(items.len());
    for item in items {
        let pointer = item.as_str(child.text).and_then(|p| p.strip_prefix('/')).ok_or(Declined)?;
        let tokens: Vec<String> = pointer.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
        let mut at = parent.tree;
        for token in &tokens {
            at = at.get(parent.text, token).ok_or(Declined)?;
        }
        pointers.push(tokens);
    }
    Ok(pointers)
}

#[derive(Clone, Copy)]
struct Texts<'t> {
    parent: &'t str,
    child: &'t str,
}

/// A node of the merged document: the parent's value here, the child's, or both.
#[derive(Clone, Copy)]
struct Node<'t> {
    parent: Option<&'t Tree>,
    patch: Option<&'t Tree>,
    texts: Texts<'t>,
    replace: &'t [Vec<String>],
    /// Bit `i`: `replace[i]` names this node or one below it.
    matching: u64,
    depth: usize,
}

/// What a node reads as.
enum Shape<'t> {
    /// A mapping: the parent's entries (merged with the child's), then the child's new ones.
    Map { parent: &'t [(Text, Tree)], patch: &'t [(Text, Tree)] },
    /// Any other value, as one side wrote it.
    Value { tree: &'t Tree, text: &'t str, from_child: bool },
}

impl<'t> Node<'t> {
    /// The whole merged document.
    fn root(parent: Side<'t>, child: Side<'t>, replace: &'t [Vec<String>]) -> Result<Self, Declined> {
        if replace.len() > 64 {
            return Err(Declined);
        }
        Ok(Node {
            parent: Some(parent.tree),
            patch: Some(child.tree),
            texts: Texts { parent: parent.text, child: child.text },
            replace,
            matching: u64::MAX.checked_shr(64 - replace.len() as u32).unwrap_or(0),
            depth: 0,
        })
    }

    fn shape(&self) -> Shape<'t> {
        const NONE: &[(Text, Tree)] = &[];
        match (self.parent, self.patch) {
            (Some(Tree::Map(parent)), None) => Shape::Map { parent, patch: NONE },
            (Some(Tree::Map(parent)), Some(Tree::Map(patch))) if !self.replaced() => Shape::Map { parent, patch },
            (_, Some(Tree::Map(patch))) => Shape::Map { parent: NONE, patch },
            (_, Some(tree)) => Shape::Value { tree, text: self.texts.child, from_child: true },
            (Some(tree), None) => Shape::Value { tree, text: self.texts.parent, from_child: false },
            (None, None) => Shape::Value { tree: &Tree::Null, text: "", from_child: false },
        }
    }

    /// Whether a `replace` pointer names this node: the child's value is then taken whole.
    fn replaced(&self) -> bool {
        (0..self.replace.len()).any(|i| self.matching & (1 << i) != 0 && self.replace[i].len() == self.depth)
    }

    /// The node for `key` below this one.
    fn below(&self, parent: Option<&'t Tree>, patch: Option<&'t Tree>, key: &str) -> Node<'t> {
        let mut matching = 0;
        for (i, pointer) in self.replace.iter().enumerate() {
            if self.matching & (1 << i) != 0 && pointer.get(self.depth).is_some_and(|t| t == key) {
                matching |= 1 << i;
            }
        }
        Node { parent, patch, matching, depth: self.depth + 1, ..*self }
    }

    /// The node for a list item, which one side wrote whole.
    fn item(&self, tree: &'t Tree, from_child: bool) -> Node<'t> {
        let (parent, patch) = if from_child { (None, Some(tree)) } else { (Some(tree), None) };
        Node { parent, patch, matching: 0, depth: self.depth + 1, ..*self }
    }
}

impl<'de, 't> de::Deserializer<'de> for Node<'t> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.shape() {
            Shape::Map { parent, patch } => visitor.visit_map(Entries::new(self, parent, patch)),
            Shape::Value { tree, text, from_child } => match tree {
                Tree::Null => visitor.visit_unit(),
                Tree::Bool(b) => visitor.visit_bool(*b),
                Tree::Int(n) => visitor.visit_u64(*n),
                Tree::Str(s) => visitor.visit_str(s.get(text)),
                Tree::Seq(items) => visitor.visit_seq(Items { node: self, items: items.iter(), from_child }),
                Tree::Map(_) => Err(Declined), // shaped as a mapping above
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.shape() {
            Shape::Value { tree: Tree::Null, .. } => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    // As the fast reader: a struct only from a mapping (serde's derived visitors would also
    // take a list), and no unknown key skipped.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        match self.shape() {
            Shape::Map { parent, patch } => visitor.visit_map(Entries::new(self, parent, patch)),
            Shape::Value { .. } => Err(Declined),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        match self.shape() {
            Shape::Value { tree: Tree::Str(s), text, .. } => {
                visitor.visit_enum(de::value::StrDeserializer::<Declined>::new(s.get(text)))
            }
            // `{before: id}`, written whole by one side.
            Shape::Map { parent: [], patch: [(key, value)] } => visitor.visit_enum(Variant {
                node: self.below(None, Some(value), key.get(self.texts.child)),
                key: key.get(self.texts.child),
            }),
            Shape::Map { parent: [(key, value)], patch: [] } => visitor.visit_enum(Variant {
                node: self.below(Some(value), None, key.get(self.texts.parent)),
                key: key.get(self.texts.parent),
            }),
            _ => Err(Declined),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Declined> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

/// The entries of a merged mapping: the parent's, in its order, each merged with the child's
/// entry of that key (or removed by its `null`); then the child's new entries, in its order.
struct Entries<'t> {
    node: Node<'t>,
    parent: std::slice::Iter<'t, (Text, Tree)>,
    patch: &'t [(Text, Tree)],
    /// Which of the child's entries merged with a parent's.
    merged: Vec<bool>,
    /// The child's new entries, once the parent's are done.
    new: Option<std::iter::Enumerate<std::slice::Iter<'t, (Text, Tree)>>>,
    /// The value of the entry whose key was just read.
    value: Option<Node<'t>>,
    /// The child's keys, for a large mapping.
    index: Option<HashMap<&'t str, usize, foldhash::fast::RandomState>>,
}

impl<'t> Entries<'t> {
    fn new(node: Node<'t>, parent: &'t [(Text, Tree)], patch: &'t [(Text, Tree)]) -> Self {
        Entries {
            node,
            parent: parent.iter(),
            patch,
            merged: vec![false; patch.len()],
            new: None,
            value: None,
            index: None,
        }
    }

    /// The child's entry for `key`, if it has one.
    fn in_patch(&mut self, key: &str) -> Option<usize> {
        let text = self.node.texts.child;
        if self.patch.len() <= 16 {
            return self.patch.iter().position(|(k, _)| k.get(text) == key);
        }
        let patch = self.patch;
        let index =
            self.index.get_or_insert_with(|| patch.iter().enumerate().map(|(i, (k, _))| (k.get(text), i)).collect());
        index.get(key).copied()
    }

    /// The next entry of the merged mapping: its key, and its value's node.
    fn next_entry(&mut self) -> Result<Option<(&'t str, Node<'t>)>, Declined> {
        let texts = self.node.texts;
        while let Some((key, value)) = self.parent.next() {
            let key = key.get(texts.parent);
            let Some(i) = self.in_patch(key) else { return Ok(Some((key, self.node.below(Some(value), None, key)))) };
            self.merged[i] = true;
            match &self.patch[i].1 {
                Tree::Null => continue, // removed
                patch if placed(patch, texts.child) => return Err(Declined),
                patch => return Ok(Some((key, self.node.below(Some(value), Some(patch), key)))),
            }
        }
        let patch = self.patch;
        let new = self.new.get_or_insert_with(|| patch.iter().enumerate());
        for (i, (key, value)) in new.by_ref() {
            let key = key.get(texts.child);
            if self.merged[i] || (self.node.depth == 0 && key == "replace") {
                continue;
            }
            if matches!(value, Tree::Null) || placed(value, texts.child) {
                return Err(Declined); // a null removes nothing: the schema decides if it may be there
            }
            return Ok(Some((key, self.node.below(None, Some(value), key))));
        }
        Ok(None)
    }
}

/// Whether a value of the child's has a `place`, which the full path applies.
fn placed(value: &Tree, text: &str) -> bool {
    value.get(text, "place").is_some()
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Declined> {
        match self.next_entry()? {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(de::value::StrDeserializer::<Declined>::new(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        seed.deserialize(self.value.take().ok_or(Declined)?)
    }
}

/// The items of a list, which one side wrote whole.
struct Items<'t> {
    node: Node<'t>,
    items: std::slice::Iter<'t, Tree>,
    from_child: bool,
}

impl<'de> de::SeqAccess<'de> for Items<'_> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Declined> {
        match self.items.next() {
            Some(item) => seed.deserialize(self.node.item(item, self.from_child)).map(Some),
            None => Ok(None),
        }
    }
}

/// An enum written as a one-entry mapping, `{key: value}`.
struct Variant<'t> {
    key: &'t str,
    node: Node<'t>,
}

impl<'de, 't> de::EnumAccess<'de> for Variant<'t> {
    type Error = Declined;
    type Variant = Node<'t>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Node<'t>), Declined> {
        let variant = seed.deserialize(de::value::StrDeserializer::<Declined>::new(self.key))?;
        Ok((variant, self.node))
    }
}

impl<'de> de::VariantAccess<'de> for Node<'_> {
    type Error = Declined;

    // A unit variant is written as a plain string; `{name: ...}` is not one.
    fn unit_variant(self) -> Result<(), Declined> {
        Err(Declined)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Declined> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }
}
