//! A document as the fast reader reads it, kept as a tree of positions in its text: what the
//! fast path for `extends` children lays over a parent (`crate::overlay`). It holds no copies
//! of the text (a string is where it is written, unless it had to be unescaped), so it can be
//! kept beside the text without borrowing it, and building it costs no hashing.

use super::fast::Reader;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A node of a document.
#[derive(Debug, PartialEq)]
pub(crate) enum Tree {
    Null,
    Bool(bool),
    Int(u64),
    Str(Text),
    Seq(Vec<Tree>),
    /// Entries in document order (the reader has refused duplicate keys).
    Map(Vec<(Text, Tree)>),
}

/// A string of a document: where it is in the text, or (unescaped) the string itself.
#[derive(Debug, PartialEq)]
pub(crate) enum Text {
    At(u32, u32),
    Owned(Box<str>),
}

impl Text {
    /// The string, from the text the tree was read from.
    pub(crate) fn get<'t>(&'t self, text: &'t str) -> &'t str {
        match self {
            Text::At(start, end) => text.get(*start as usize..*end as usize).unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }
}

impl Tree {
    /// Reads `text` with the fast reader, or `None` if it declines.
    pub(crate) fn read(text: &str) -> Option<Tree> {
        Self::read_with(Reader::new(text)?, text)
    }

    /// Reads the document `reader` was made from (`text`).
    pub(crate) fn read_with<'a>(reader: Reader<'a>, text: &'a str) -> Option<Tree> {
        reader.read_seed(Seed { text }).ok()
    }

    /// Reads what `deserializer` gives as a tree whose strings are all owned: one that needs
    /// no text (pass `""` where a text is asked for).
    pub(crate) fn read_owned<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Tree, D::Error> {
        // No string lies in an empty text, so every one is copied.
        Seed { text: "" }.deserialize(deserializer)
    }

    /// The value at `key`, if this is a mapping that has it.
    pub(crate) fn get<'t>(&'t self, text: &str, key: &str) -> Option<&'t Tree> {
        match self {
            Tree::Map(entries) => entries.iter().find(|(k, _)| k.get(text) == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string this is, if it is one.
    pub(crate) fn as_str<'t>(&'t self, text: &'t str) -> Option<&'t str> {
        match self {
            Tree::Str(s) => Some(s.get(text)),
            _ => None,
        }
    }
}

/// Reads a node of `text`.
#[derive(Clone, Copy)]
struct Seed<'a> {
    text: &'a str,
}

impl<'a> Seed<'a> {
    /// Where `s` is in the text: the reader lends out slices of it.
    fn text_of(self, s: &str) -> Text {
        let start = (s.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        let end = start.wrapping_add(s.len());
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(from), Ok(to)) if start <= end && end <= self.text.len() => Text::At(from, to),
            _ => Text::Owned(s.into()),
        }
    }
}

impl<'a> DeserializeSeed<'a> for Seed<'a> {
    type Value = Tree;

    fn deserialize<D: de::Deserializer<'a>>(self, deserializer: D) -> Result<Tree, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for Seed<'a> {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML node")
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Tree, E> {
        Ok(Tree::Int(n))
    }

    fn visit_borrowed_str<E>(self, s: &'a str) -> Result<Tree, E> {
        Ok(Tree::Str(self.text_of(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Tree, E> {
        Ok(Tree::Str(Text::Owned(s.into())))
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Tree::Seq(items))
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key_seed(KeySeed(self))? {
            entries.push((key, map.next_value_seed(self)?));
        }
        Ok(Tree::Map(entries))
    }
}

/// Reads a mapping key: a string (the fast reader gives no other kind of key).
struct KeySeed<'a>(Seed<'a>);

impl<'a> DeserializeSeed<'a> for KeySeed<'a> {
    type Value = Text;

    fn deserialize<D: de::Deserializer<'a>>(self, deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'a> Visitor<'a> for KeySeed<'a> {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, s: &'a str) -> Result<Text, E> {
        Ok(self.0.text_of(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Text, E> {
        Ok(Text::Owned(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_positions_in_the_text_unless_unescaped() {
        let text = "a: x\n'b''c': 'd''e'\nl:\n  - 1\n  - true\n";
        let tree = Tree::read(text).expect("read");
        assert_eq!(tree.get(text, "a").and_then(|t| t.as_str(text)), Some("x"));
        assert!(matches!(tree.get(text, "a"), Some(Tree::Str(Text::At(3, 4)))));
        assert!(matches!(tree.get(text, "b'c"), Some(Tree::Str(Text::Owned(s))) if &**s == "d'e"));
        assert_eq!(tree.get(text, "l"), Some(&Tree::Seq(vec![Tree::Int(1), Tree::Bool(true)])));
        assert_eq!(Tree::read("a: 1\na: 2\n"), None, "duplicate keys");
    }
}
