//! The smallest write-back (SPEC §5a): turn one document of a file into a new value by editing
//! its text in place, so the `git diff` a reviewer reads is the change itself.
//!
//! The document's text is parsed once more into a tree of byte spans (yaml-rust2 events carry
//! start markers; ends are found from the token: quotes, the scalar's own text, a closing
//! bracket, the last line of a block scalar). Then old and new values are compared node by node:
//! - a changed scalar replaces only its token (its quoting style kept where the value allows,
//!   an aligned trailing comment kept at its column), so only its line changes;
//! - a key that is gone removes the lines of its entry (comments before the next key stay);
//! - new keys are added as lines after the mapping's last entry, at its indentation;
//! - objects recurse; a flow collection stays flow (new keys are appended inside the braces,
//!   anything else re-renders that collection in flow style on its line);
//! - anything else (an array whose length changes, a scalar that becomes a mapping, …) re-renders
//!   just that node, indented where it was.
//!
//! Nothing outside the edited spans changes: comments, blank lines, alignment, quoting, key
//! order, other documents, line endings (`\r\n` files get `\r\n` in what is inserted).
//!
//! Where the layout is not understood exactly (anchors and aliases, merge keys, multi-line plain
//! scalars, explicit `?` keys, tags outside a mapping value, …) the node's parent is re-rendered
//! instead, and at the root the whole document is re-rendered with its comments carried over
//! ([`yaml::render_document`]). Every result is parsed again and must give exactly the new value
//! (and the other documents their old values), otherwise the next, coarser way is used: a write
//! never lands as something that reads differently.

use std::cmp::Reverse;
use std::ops::Range;

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::yaml::{self, SourceDoc, YamlError};

/// `text` (a whole file) with document `doc` (parsed from `text`) changed to `new`, as small a
/// text change as possible. Other documents are kept byte for byte. The result always parses
/// back to the file's documents with `doc` replaced by `new`.
pub fn edit_document(text: &str, doc: &SourceDoc, new: &Value) -> Result<String, YamlError> {
    if doc.value == *new {
        return Ok(text.to_string());
    }
    let before = yaml::parse_documents(text)?;
    let expected: Vec<&Value> = before
        .iter()
        .map(|d| if d.index == doc.index { new } else { &d.value })
        .collect();
    let reads_as_expected = |out: &str| {
        yaml::parse_documents(out).is_ok_and(|docs| {
            docs.len() == expected.len() && docs.iter().zip(&expected).all(|(d, e)| d.value == **e)
        })
    };
    if let Some(out) = in_place(text, doc, new) {
        if reads_as_expected(&out) {
            return Ok(out);
        }
    }
    // The whole document, re-rendered with its comments carried over by pointer.
    let mut body = yaml::render_document(new, Some((&text[doc.span.clone()], doc)))?;
    if text[doc.body()].contains("\r\n") {
        body = body.replace('\n', "\r\n");
    }
    let out = yaml::replace_document(text, doc, &body);
    if reads_as_expected(&out) {
        return Ok(out);
    }
    Err(YamlError {
        position: doc.start,
        message: "cannot write the change as YAML that reads back the same; nothing was written"
            .into(),
    })
}

/// The in-place edit, or `None` when the document's layout is beyond it.
fn in_place(text: &str, doc: &SourceDoc, new: &Value) -> Option<String> {
    let body = doc.body();
    let src = text.get(body.clone())?;
    let root = Tree::parse(src)?;
    let mut ed = Editor {
        src,
        lines: Lines::new(src),
        nl: if src.contains("\r\n") { "\r\n" } else { "\n" },
        edits: Vec::new(),
    };
    ed.edit(&root, &doc.value, new, Place::Root).ok()?;
    let new_src = ed.apply()?;
    Some(format!(
        "{}{}{}",
        &text[..body.start],
        new_src,
        &text[body.end..]
    ))
}

/// Byte offsets of line starts.
struct Lines {
    starts: Vec<usize>,
    len: usize,
}

impl Lines {
    fn new(src: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        if starts.last() == Some(&src.len()) && starts.len() > 1 {
            starts.pop();
        }
        Lines {
            starts,
            len: src.len(),
        }
    }

    /// 0-based line holding byte `at`.
    fn line_of(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at).saturating_sub(1)
    }

    fn start(&self, line: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(self.len)
    }

    /// Start of the next line (after the terminator), or the end of the text.
    fn next(&self, line: usize) -> usize {
        self.start(line + 1)
    }

    /// End of the line's content, before `\n` / `\r\n`.
    fn end(&self, src: &str, line: usize) -> usize {
        let next = self.next(line);
        let text = &src[self.start(line)..next];
        next - (text.len() - text.trim_end_matches(['\n', '\r']).len())
    }
}

#[derive(Debug)]
enum Kind {
    Scalar { style: TScalarStyle, empty: bool },
    Alias,
    Map { flow: bool, entries: Vec<Entry> },
    Seq { flow: bool, items: Vec<Node> },
}

#[derive(Debug)]
struct Node {
    /// Byte offset (in the document's text) of the node's token: the scalar (after any tag), `{`,
    /// `[`, the first `-` or the first key. Meaningless for an empty scalar.
    start: usize,
    /// Byte offset just after the node's last character.
    end: usize,
    /// Column (in characters) of `start`.
    col: usize,
    kind: Kind,
    tagged: bool,
    /// The span or layout is not known exactly: never edited in place.
    weird: bool,
}

#[derive(Debug)]
struct Entry {
    key: String,
    key_start: usize,
    key_col: usize,
    /// Just after the `:`.
    colon_end: usize,
    value: Node,
}

impl Node {
    fn is_block_scalar(&self) -> bool {
        matches!(
            self.kind,
            Kind::Scalar {
                style: TScalarStyle::Literal | TScalarStyle::Folded,
                ..
            }
        )
    }

    fn is_empty_scalar(&self) -> bool {
        matches!(self.kind, Kind::Scalar { empty: true, .. })
    }

    fn is_flow_collection(&self) -> bool {
        matches!(
            self.kind,
            Kind::Map { flow: true, .. } | Kind::Seq { flow: true, .. }
        )
    }

    fn is_scalar(&self) -> bool {
        matches!(self.kind, Kind::Scalar { .. })
    }

    fn style(&self) -> Option<TScalarStyle> {
        match self.kind {
            Kind::Scalar { style, .. } => Some(style),
            _ => None,
        }
    }
}

/// A collection being built, with the key waiting for its value.
struct Open {
    node: Node,
    key: Option<(String, usize, usize, usize)>,
    flow_ctx: bool,
}

struct Tree<'a> {
    src: &'a str,
    lines: Lines,
}

impl<'a> Tree<'a> {
    fn parse(src: &'a str) -> Option<Node> {
        let t = Tree {
            src,
            lines: Lines::new(src),
        };
        t.build()
    }

    fn byte(&self, m: &Marker) -> Option<(usize, usize)> {
        let line = m.line().checked_sub(1)?;
        let start = *self.lines.starts.get(line)?;
        let rest = &self.src[start..];
        let off = match rest.char_indices().nth(m.col()) {
            Some((i, _)) => i,
            None if rest.chars().count() == m.col() => rest.len(),
            None => return None,
        };
        Some((start + off, m.col()))
    }

    fn col_of(&self, at: usize) -> usize {
        let start = self.lines.start(self.lines.line_of(at));
        self.src[start..at].chars().count()
    }

    /// End of a block scalar whose content starts at `start` (column `indent`): its last
    /// non-blank line indented at least that much.
    fn block_scalar_end(&self, start: usize, indent: usize) -> usize {
        let first = self.lines.line_of(start);
        let mut last = first;
        let mut line = first + 1;
        while line < self.lines.starts.len() {
            let text = &self.src[self.lines.start(line)..self.lines.end(self.src, line)];
            if !text.trim().is_empty() {
                if text.len() - text.trim_start_matches(' ').len() < indent {
                    break;
                }
                last = line;
            }
            line += 1;
        }
        self.lines.end(self.src, last)
    }

    fn build(&self) -> Option<Node> {
        let mut parser = Parser::new_from_str(self.src);
        let mut stack: Vec<Open> = Vec::new();
        let mut root = None;
        loop {
            let (event, marker) = parser.next_token().ok()?;
            let flow_ctx = stack.last().is_some_and(|o| o.flow_ctx);
            let is_map = matches!(event, Event::MappingStart(..));
            let node = match event {
                Event::StreamEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {
                    continue
                }
                Event::Scalar(v, style, anchor, tag) => {
                    let (start, col) = self.byte(&marker)?;
                    let is_key = matches!(stack.last(), Some(o) if matches!(o.node.kind, Kind::Map { .. }) && o.key.is_none());
                    if is_key {
                        let open = stack.last_mut()?;
                        let end = match style {
                            TScalarStyle::Plain if !v.is_empty() => self.src[start..]
                                .starts_with(v.as_str())
                                .then_some(start + v.len()),
                            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                                yaml::quoted_len(&self.src[start..]).map(|l| start + l)
                            }
                            _ => None,
                        };
                        let colon = end.and_then(|e| {
                            let rest = &self.src[e..];
                            let gap = rest.len() - rest.trim_start_matches([' ', '\t']).len();
                            rest[gap..].starts_with(':').then_some(e + gap + 1)
                        });
                        let merge = style == TScalarStyle::Plain && v == "<<";
                        match colon {
                            Some(colon_end) if anchor == 0 && tag.is_none() && !merge => {
                                if let Kind::Map { entries, .. } = &open.node.kind {
                                    if entries.is_empty() && !open.flow_ctx {
                                        open.node.start = start;
                                        open.node.col = col;
                                    }
                                }
                                open.key = Some((v, start, col, colon_end));
                            }
                            _ => {
                                open.node.weird = true;
                                open.key = Some((v, start, col, start));
                            }
                        }
                        continue;
                    }
                    let empty = v.is_empty() && style == TScalarStyle::Plain;
                    let end = match style {
                        _ if empty => Some(start),
                        TScalarStyle::Plain => self.src[start..]
                            .starts_with(v.as_str())
                            .then_some(start + v.len()),
                        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                            yaml::quoted_len(&self.src[start..]).map(|l| start + l)
                        }
                        TScalarStyle::Literal | TScalarStyle::Folded if !v.is_empty() => {
                            Some(self.block_scalar_end(start, col))
                        }
                        _ => None,
                    };
                    Node {
                        start,
                        end: end.unwrap_or(start),
                        col,
                        kind: Kind::Scalar { style, empty },
                        tagged: tag.is_some(),
                        weird: end.is_none() || anchor != 0,
                    }
                }
                Event::Alias(_) => {
                    let (start, col) = self.byte(&marker)?;
                    let ok = self.src[start..].starts_with('*');
                    let len = self.src[start..]
                        .find(|c: char| c.is_whitespace() || ",[]{}".contains(c))
                        .unwrap_or(self.src.len() - start);
                    let mut node = Node {
                        start,
                        end: start + len,
                        col,
                        kind: Kind::Alias,
                        tagged: false,
                        weird: !ok,
                    };
                    if stack
                        .last()
                        .is_some_and(|o| matches!(o.node.kind, Kind::Map { .. }) && o.key.is_none())
                    {
                        // An alias as a key.
                        let open = stack.last_mut()?;
                        open.node.weird = true;
                        open.key = Some((String::new(), start, col, start));
                        continue;
                    }
                    node.weird |= !ok;
                    node
                }
                Event::MappingStart(anchor, tag) | Event::SequenceStart(anchor, tag) => {
                    let (mut start, mut col) = self.byte(&marker)?;
                    let first = self.src[start..].chars().next();
                    let flow = first == Some(if is_map { '{' } else { '[' });
                    let dash_indicator = |at: usize| {
                        let mut rest = self.src[at..].chars();
                        rest.next() == Some('-')
                            && rest
                                .next()
                                .is_none_or(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
                    };
                    if !is_map && !flow && !dash_indicator(start) {
                        // An indentless sequence is reported at its first item, after the `-`.
                        let line_start = self.lines.start(self.lines.line_of(start));
                        let before = &self.src[line_start..start];
                        if let Some(dash) = before.rfind('-') {
                            if before[..dash].trim().is_empty()
                                && before[dash + 1..].trim().is_empty()
                            {
                                start = line_start + dash;
                                col = before[..dash].chars().count();
                            }
                        }
                    }
                    let weird = anchor != 0
                        || (flow_ctx && !flow)
                        || (!is_map && !flow && !dash_indicator(start));
                    let kind = if is_map {
                        Kind::Map {
                            flow,
                            entries: Vec::new(),
                        }
                    } else {
                        Kind::Seq {
                            flow,
                            items: Vec::new(),
                        }
                    };
                    stack.push(Open {
                        node: Node {
                            start,
                            end: start,
                            col,
                            kind,
                            tagged: tag.is_some(),
                            weird,
                        },
                        key: None,
                        flow_ctx: flow_ctx || flow,
                    });
                    continue;
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    let open = stack.pop()?;
                    let mut node = open.node;
                    let flow = matches!(
                        node.kind,
                        Kind::Map { flow: true, .. } | Kind::Seq { flow: true, .. }
                    );
                    if flow {
                        let (at, _) = self.byte(&marker)?;
                        let close = if matches!(node.kind, Kind::Map { .. }) {
                            '}'
                        } else {
                            ']'
                        };
                        node.weird |= !self.src[at..].starts_with(close);
                        node.end = at + 1;
                    } else {
                        let last = match &node.kind {
                            Kind::Map { entries, .. } => entries.last().map(|e| {
                                if e.value.is_empty_scalar() {
                                    (e.colon_end, false)
                                } else {
                                    (e.value.end, e.value.weird)
                                }
                            }),
                            Kind::Seq { items, .. } => items
                                .last()
                                .map(|i| (i.end, i.weird || i.is_empty_scalar())),
                            _ => None,
                        };
                        match last {
                            Some((end, weird)) => {
                                node.end = end;
                                node.weird |= weird;
                            }
                            None => node.weird = true,
                        }
                    }
                    node
                }
            };
            match stack.last_mut() {
                None => root = Some(node),
                Some(open) => match &mut open.node.kind {
                    Kind::Map { entries, .. } => {
                        let (key, key_start, key_col, colon_end) = open.key.take()?;
                        entries.push(Entry {
                            key,
                            key_start,
                            key_col,
                            colon_end,
                            value: node,
                        });
                    }
                    Kind::Seq { items, .. } => items.push(node),
                    _ => return None,
                },
            }
        }
        let mut root = root?;
        if !stack.is_empty() {
            return None;
        }
        if matches!(root.kind, Kind::Map { flow: false, .. }) {
            root.col = self.col_of(root.start);
        }
        Some(root)
    }
}

/// Where a node sits, which decides how it may be rewritten.
#[derive(Clone, Copy)]
enum Place<'t> {
    Root,
    /// The value of an entry of a block mapping.
    BlockValue(&'t Entry),
    /// An item of a block sequence.
    BlockItem,
    /// Anything inside a flow collection.
    Flow,
}

/// Not doable at this level; the caller rewrites a larger node.
struct Coarser;

struct Editor<'a> {
    src: &'a str,
    lines: Lines,
    nl: &'static str,
    /// Replacements of byte ranges of `src`, in the order they were made.
    edits: Vec<(Range<usize>, String)>,
}

impl Editor<'_> {
    fn push(&mut self, range: Range<usize>, text: String) {
        self.edits.push((range, text));
    }

    /// The edited text; `None` if the edits overlap or do not fall on character boundaries
    /// (a layout this editor misread; the caller then re-renders the document).
    fn apply(mut self) -> Option<String> {
        let mut order: Vec<usize> = (0..self.edits.len()).collect();
        // Right to left; at one position a removal before an insertion, and insertions made
        // later land after those made earlier.
        order.sort_by_key(|&i| {
            let (r, _) = &self.edits[i];
            (Reverse(r.start), Reverse(r.end), Reverse(i))
        });
        let mut out = self.src.to_string();
        let mut limit = self.src.len();
        for i in order {
            let (range, text) = std::mem::take(&mut self.edits[i]);
            let fits = range.start <= range.end
                && range.end <= limit
                && self.src.is_char_boundary(range.start)
                && self.src.is_char_boundary(range.end);
            if !fits {
                return None;
            }
            limit = range.start;
            out.replace_range(range, &text);
        }
        Some(out)
    }

    fn edit(&mut self, node: &Node, old: &Value, new: &Value, place: Place) -> Result<(), Coarser> {
        if old == new {
            return Ok(());
        }
        let mark = self.edits.len();
        if self.diff(node, old, new).is_ok() {
            return Ok(());
        }
        self.edits.truncate(mark);
        self.replace(node, new, place)
    }

    /// Change `node` from `old` to `new` keeping its own layout: recurse into what changed.
    fn diff(&mut self, node: &Node, old: &Value, new: &Value) -> Result<(), Coarser> {
        if node.weird {
            return Err(Coarser);
        }
        let find = |entries: &'_ [Entry], key: &str| -> Result<usize, Coarser> {
            entries.iter().position(|e| e.key == key).ok_or(Coarser)
        };
        match (&node.kind, old, new) {
            (Kind::Map { flow, entries }, Value::Object(o), Value::Object(n)) if !n.is_empty() => {
                if entries.len() != o.len() {
                    return Err(Coarser);
                }
                let added: Map<String, Value> = n
                    .iter()
                    .filter(|(k, _)| !o.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if *flow && o.keys().any(|k| !n.contains_key(k)) {
                    return Err(Coarser);
                }
                for (k, ov) in o {
                    let e = &entries[find(entries, k)?];
                    match n.get(k) {
                        Some(nv) => {
                            let place = if *flow {
                                Place::Flow
                            } else {
                                Place::BlockValue(e)
                            };
                            self.edit(&e.value, ov, nv, place)?
                        }
                        None => self.remove_block_entry(e)?,
                    }
                }
                if !added.is_empty() {
                    if *flow {
                        self.add_flow_entries(node, entries, &added)?
                    } else {
                        self.add_block_entries(node, &added)?
                    }
                }
                Ok(())
            }
            (Kind::Seq { flow, items }, Value::Array(a), Value::Array(b))
                if a.len() == b.len() && items.len() == a.len() =>
            {
                let place = if *flow { Place::Flow } else { Place::BlockItem };
                for ((item, x), y) in items.iter().zip(a).zip(b) {
                    self.edit(item, x, y, place)?;
                }
                Ok(())
            }
            _ => Err(Coarser),
        }
    }

    /// Removes the lines of a block mapping's entry, from its key to the end of its value.
    fn remove_block_entry(&mut self, e: &Entry) -> Result<(), Coarser> {
        if e.value.weird {
            return Err(Coarser);
        }
        let first = self.lines.line_of(e.key_start);
        let line_start = self.lines.start(first);
        if !self.src[line_start..e.key_start].trim().is_empty() {
            // `- key: v`: the key shares its line with an indicator.
            return Err(Coarser);
        }
        let end = if e.value.is_empty_scalar() {
            e.colon_end
        } else {
            e.value.end
        };
        let last = self.lines.line_of(end.saturating_sub(1).max(e.key_start));
        self.push(line_start..self.lines.next(last), String::new());
        Ok(())
    }

    /// New keys, as lines after the mapping's last entry at the mapping's indentation.
    fn add_block_entries(&mut self, map: &Node, added: &Map<String, Value>) -> Result<(), Coarser> {
        let block = render_block(&Value::Object(added.clone())).ok_or(Coarser)?;
        let last = self.lines.line_of(map.end.saturating_sub(1).max(map.start));
        let at = self.lines.next(last);
        let mut text = String::new();
        if !self.src[..at].ends_with('\n') {
            text.push_str(self.nl);
        }
        text.push_str(&indent_lines(&block, map.col, true, self.nl));
        text.push_str(self.nl);
        self.push(at..at, text);
        Ok(())
    }

    /// New keys inside a flow mapping's braces, after its last entry.
    fn add_flow_entries(
        &mut self,
        map: &Node,
        entries: &[Entry],
        added: &Map<String, Value>,
    ) -> Result<(), Coarser> {
        let pairs: Vec<String> = added
            .iter()
            .map(|(k, v)| format!("{}: {}", flow_string(k), render_flow(v)))
            .collect();
        let pairs = pairs.join(", ");
        match entries.last() {
            Some(last) if !last.value.is_empty_scalar() && !last.value.weird => {
                self.push(last.value.end..last.value.end, format!(", {pairs}"));
            }
            None if self.src.get(map.start..map.end) == Some("{}") => {
                self.push(map.start + 1..map.start + 1, pairs);
            }
            _ => return Err(Coarser),
        }
        Ok(())
    }

    /// Rewrites `node` as `new`, where it stands.
    fn replace(&mut self, node: &Node, new: &Value, place: Place) -> Result<(), Coarser> {
        if node.weird && !node.is_empty_scalar() {
            return Err(Coarser);
        }
        match place {
            Place::Root => Err(Coarser),
            Place::Flow => {
                if node.tagged || node.is_empty_scalar() {
                    return Err(Coarser);
                }
                let text = match (new, node.style()) {
                    (Value::String(s), Some(style)) => scalar_string(s, style, true),
                    _ => render_flow(new),
                };
                self.push(node.start..node.end, text);
                Ok(())
            }
            Place::BlockItem => {
                if node.tagged || node.is_block_scalar() || node.is_empty_scalar() {
                    return Err(Coarser);
                }
                match inline(new, node) {
                    Some(text) => self.replace_token(node.start..node.end, text),
                    None => {
                        let block = render_block(new).ok_or(Coarser)?;
                        let text = indent_lines(&block, node.col, false, self.nl);
                        self.push(node.start..node.end, text);
                    }
                }
                Ok(())
            }
            Place::BlockValue(e) => self.replace_block_value(e, node, new),
        }
    }

    fn replace_block_value(&mut self, e: &Entry, node: &Node, new: &Value) -> Result<(), Coarser> {
        let key_line = self.lines.line_of(e.key_start);
        let empty = node.is_empty_scalar();
        let block_scalar = node.is_block_scalar();
        let on_key_line = !empty && !block_scalar && self.lines.line_of(node.start) == key_line;
        match inline(new, node) {
            Some(text) => {
                if empty {
                    self.push(e.colon_end..e.colon_end, format!(" {text}"));
                } else if block_scalar
                    || !on_key_line && (node.col <= e.key_col || !node.is_scalar())
                {
                    // On the key's line, and the key line's comment after it.
                    let key_line_end = self.lines.end(self.src, key_line);
                    let comment = self
                        .src
                        .get(e.colon_end..key_line_end)
                        .unwrap_or_default()
                        .trim();
                    let text = if comment.starts_with('#') && !block_scalar {
                        format!(" {text} {comment}")
                    } else {
                        format!(" {text}")
                    };
                    self.push(e.colon_end..node.end, text);
                } else if on_key_line {
                    // From the first character after `:` (a tag included) to the token's end.
                    let rest = self.src.get(e.colon_end..node.start).ok_or(Coarser)?;
                    let start = e.colon_end + (rest.len() - rest.trim_start().len());
                    self.replace_token(start..node.end, text);
                } else {
                    if node.tagged {
                        return Err(Coarser);
                    }
                    self.replace_token(node.start..node.end, text);
                }
            }
            None => {
                let block = render_block(new).ok_or(Coarser)?;
                if !empty && !block_scalar && !on_key_line {
                    // A block collection (or a scalar) on the lines below the key.
                    if node.tagged {
                        return Err(Coarser);
                    }
                    let indent = if node.col > e.key_col {
                        node.col
                    } else if new.is_array() {
                        e.key_col
                    } else {
                        e.key_col + 2
                    };
                    if indent == node.col {
                        let text = indent_lines(&block, indent, false, self.nl);
                        self.push(node.start..node.end, text);
                    } else {
                        let line_start = self.lines.start(self.lines.line_of(node.start));
                        let text = indent_lines(&block, indent, true, self.nl);
                        self.push(line_start..node.end, text);
                    }
                } else {
                    let text = format!(
                        "{}{}",
                        self.nl,
                        indent_lines(&block, e.key_col + 2, true, self.nl)
                    );
                    if block_scalar && (block.starts_with('|') || block.starts_with('>')) {
                        // Block scalar for block scalar: the header stays on the key's line.
                        let text = indent_lines(&block, e.key_col, false, self.nl);
                        self.push(e.colon_end..node.end, format!(" {text}"));
                    } else if block_scalar {
                        self.push(e.colon_end..node.end, text);
                    } else {
                        let last = if empty {
                            key_line
                        } else {
                            self.push(e.colon_end..node.end, String::new());
                            self.lines.line_of(node.end.saturating_sub(1))
                        };
                        // After the line's trailing comment, which stays with the key.
                        let at = self.lines.end(self.src, last);
                        self.push(at..at, text);
                    }
                }
            }
        }
        Ok(())
    }

    /// Replaces a token on one line; a trailing comment aligned after it keeps its column.
    fn replace_token(&mut self, range: Range<usize>, text: String) {
        let line = self
            .lines
            .line_of(range.end.saturating_sub(1).max(range.start));
        let line_end = self.lines.end(self.src, line);
        let Some(rest) = self.src.get(range.end..line_end) else {
            self.push(range, text);
            return;
        };
        let gap = rest.len() - rest.trim_start_matches(' ').len();
        let single_line = self.lines.line_of(range.start) == line && !text.contains('\n');
        if single_line && gap >= 2 && rest[gap..].starts_with('#') {
            let old = self
                .src
                .get(range.clone())
                .unwrap_or_default()
                .chars()
                .count();
            let new = text.chars().count();
            let spaces = (gap + old).saturating_sub(new).max(1);
            self.push(
                range.start..range.end + gap,
                format!("{text}{}", " ".repeat(spaces)),
            );
        } else {
            self.push(range, text);
        }
    }
}

/// One-line text for `new` in place of `old` in block context, or `None` when it needs lines
/// of its own.
fn inline(new: &Value, old: &Node) -> Option<String> {
    match new {
        Value::Object(m) if m.is_empty() => Some("{}".into()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(_) | Value::Array(_) => old.is_flow_collection().then(|| render_flow(new)),
        Value::String(s) => {
            let style = old.style().unwrap_or(TScalarStyle::Plain);
            if s.contains('\n') && matches!(style, TScalarStyle::Literal | TScalarStyle::Folded) {
                None
            } else {
                Some(scalar_string(s, style, false))
            }
        }
        _ => Some(scalar_text(new)),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => flow_string(s),
        _ => render_flow(v),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// A string in the style the old scalar had, where the string allows it.
fn scalar_string(s: &str, style: TScalarStyle, flow: bool) -> String {
    let plain_safe = !s.chars().any(|c| c.is_control());
    match style {
        TScalarStyle::SingleQuoted if plain_safe => format!("'{}'", s.replace('\'', "''")),
        TScalarStyle::DoubleQuoted => json_string(s),
        _ if flow => flow_string(s),
        _ => {
            let emitted = render_block(&Value::String(s.to_owned())).unwrap_or_default();
            if emitted.is_empty() || emitted.contains('\n') {
                json_string(s)
            } else {
                emitted
            }
        }
    }
}

/// A string as a flow scalar: plain where the emitter would write it plain and it holds no flow
/// indicator, else double-quoted.
fn flow_string(s: &str) -> String {
    match render_block(&Value::String(s.to_owned())) {
        Some(t) if !t.contains('\n') && !t.contains([',', '[', ']', '{', '}']) && !t.is_empty() => {
            t
        }
        _ => json_string(s),
    }
}

/// `{k: v, …}` / `[a, …]` on one line.
fn render_flow(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", flow_string(k), render_flow(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Array(a) => {
            let inner: Vec<String> = a.iter().map(render_flow).collect();
            format!("[{}]", inner.join(", "))
        }
        _ => scalar_text(v),
    }
}

/// Block YAML for `v` at column 0, without the final newline.
fn render_block(v: &Value) -> Option<String> {
    let text = yaml_serde::to_string(v).ok()?;
    Some(text.trim_end_matches('\n').to_string())
}

/// `block`'s lines indented by `indent` spaces (the first one too if `first`), joined by `nl`.
fn indent_lines(block: &str, indent: usize, first: bool, nl: &str) -> String {
    let pad = " ".repeat(indent);
    block
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            if (i > 0 || first) && !line.is_empty() {
                format!("{pad}{line}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(nl)
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::scaffold::DEFAULT_CONFIG;
    use crate::manifest::write::merge_patch;
    use serde_json::json;

    /// Lines added and removed by a minimal line diff (what `git diff --numstat` counts).
    pub(crate) fn numstat(old: &str, new: &str) -> (usize, usize) {
        let a: Vec<&str> = old.split_inclusive('\n').collect();
        let b: Vec<&str> = new.split_inclusive('\n').collect();
        let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let common = lcs[0][0];
        (b.len() - common, a.len() - common)
    }

    /// Applies a merge patch to document `index` of `text` (to its root, not its `spec`).
    fn patch(text: &str, index: usize, p: Value) -> String {
        let docs = yaml::parse_documents(text).unwrap();
        let mut value = docs[index].value.clone();
        merge_patch(&mut value, &p);
        let out = edit_document(text, &docs[index], &value).unwrap();
        let again = yaml::parse_documents(&out).unwrap();
        assert_eq!(again.len(), docs.len(), "{out}");
        assert_eq!(again[index].value, value, "{out}");
        out
    }

    fn in_place_only(text: &str, p: Value) -> String {
        let docs = yaml::parse_documents(text).unwrap();
        let mut value = docs[0].value.clone();
        merge_patch(&mut value, &p);
        in_place(text, &docs[0], &value).expect("an in-place edit")
    }

    #[test]
    fn one_field_of_the_scaffolded_config_changes_one_line() {
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"tasks": {"concurrency": 2}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (1, 1));
        assert!(out.contains("\n    concurrency: 2\n"));
        // An aligned trailing comment keeps its column.
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"model": {"provider": "openai"}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (1, 1));
        assert!(out.contains("\n    provider: openai             # anthropic | openai | command\n"));
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"tasks": {"timeout_seconds": 1234567890123_u64}}}),
        );
        assert!(
            out.contains("timeout_seconds: 1234567890123 # per task"),
            "{out}"
        );
    }

    #[test]
    fn adding_a_field_adds_one_line_at_the_mapping_indentation() {
        let out = patch(DEFAULT_CONFIG, 0, json!({"spec": {"git": {"push": true}}}));
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (1, 0));
        assert!(
            out.ends_with("    author_email: claw@localhost\n    push: true\n"),
            "{out}"
        );
        // In the middle of the document: after the mapping's last entry.
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"rate_limit": {"x": "y z"}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (1, 0));
        assert!(
            out.contains("    burst: 60\n    x: y z\n  webhooks:\n"),
            "{out}"
        );
        // A new nested object is its lines, indented.
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"skills": {"registry": "r"}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (2, 0));
        assert!(
            out.ends_with("claw@localhost\n  skills:\n    registry: r\n"),
            "{out}"
        );
    }

    #[test]
    fn removing_a_field_removes_its_lines() {
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"tasks": {"allowed_roots": null}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (0, 1));
        assert!(!out.contains("allowed_roots"));
        let out = patch(DEFAULT_CONFIG, 0, json!({"spec": {"rate_limit": null}}));
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (0, 3));
        // A comment before the next key stays; one inside the removed value goes with it.
        let text = "a: 1\nb:\n  # inside b\n  c: 2\n# about d\nd: 3\n";
        assert_eq!(
            in_place_only(text, json!({"b": null})),
            "a: 1\n# about d\nd: 3\n"
        );
        // Every key of a block mapping removed: the mapping becomes `{}`.
        assert_eq!(
            in_place_only(text, json!({"b": {"c": null}})),
            "a: 1\nb: {}\n# about d\nd: 3\n"
        );
    }

    #[test]
    fn nested_patches_recurse() {
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"model": {"max_tokens": 8, "extra": 1},
                            "webhooks": {"max_attempts": null, "timeout_seconds": 5}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (3, 3));
        assert!(out.contains("    max_tokens: 8\n    api_key: {fromEnv: ANTHROPIC_API_KEY}\n    extra: 1\n  tasks:"), "{out}");
        assert!(
            out.contains("    timeout_seconds: 5\n    retention_days: 7 "),
            "{out}"
        );
    }

    #[test]
    fn other_documents_stay_byte_for_byte() {
        let text = "# header\n---\nkind: A   # the kind\nspec: {x: 1}\n---\n# b\nkind: B\nspec:\n  y: 'two'  # y\n  z: [1, 2]\n...\n# between\n---\nkind: C\nspec:\n  w: \"q\"\n";
        let out = patch(text, 1, json!({"spec": {"y": "three", "z": [1, 2, 3]}}));
        assert_eq!(
            out,
            text.replace("y: 'two'  #", "y: 'three' #")
                .replace("[1, 2]", "[1, 2, 3]")
        );
        let out = patch(text, 0, json!({"spec": {"x": null, "v": true}}));
        assert_eq!(out, text.replace("{x: 1}", "{v: true}"));
        let out = patch(text, 2, json!({"spec": {"w": "r\"s"}}));
        assert_eq!(out, text.replace("w: \"q\"", "w: \"r\\\"s\""));
    }

    #[test]
    fn comments_between_keys_and_aligned_comments_stay() {
        let text = "\
# top
a: 1        # one
# about b

b: hello    # two
c:          # three
  # inside c
  d: x      # four
  e: y
# end
";
        let out = in_place_only(text, json!({"b": "hi", "c": {"d": "xyz", "f": 0}}));
        assert_eq!(
            out,
            "\
# top
a: 1        # one
# about b

b: hi       # two
c:          # three
  # inside c
  d: xyz    # four
  e: y
  f: 0
# end
"
        );
        // A value longer than the gap still leaves one space before the comment.
        let out = in_place_only(text, json!({"a": "a much longer value"}));
        assert!(
            out.starts_with("# top\na: a much longer value # one\n"),
            "{out}"
        );
    }

    #[test]
    fn flow_mappings_stay_flow() {
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"model": {"api_key": {"fromEnv": null, "fromFile": "y"}}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (1, 1));
        assert!(out.contains("\n    api_key: {fromFile: y}\n"), "{out}");
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"model": {"api_key": {"optional": true}}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (1, 1));
        assert!(
            out.contains("\n    api_key: {fromEnv: ANTHROPIC_API_KEY, optional: true}\n"),
            "{out}"
        );
        let out = patch(
            DEFAULT_CONFIG,
            0,
            json!({"spec": {"tasks": {"allowed_roots": ["/srv", "/a b,c"]}}}),
        );
        assert_eq!(numstat(DEFAULT_CONFIG, &out), (1, 1));
        assert!(
            out.contains("\n    allowed_roots: [/srv, \"/a b,c\"] # absolute dirs"),
            "{out}"
        );
        // Spacing inside the braces is kept when a value changes in place.
        let text = "k: { a: 1,  b: x }  # c\n";
        assert_eq!(
            in_place_only(text, json!({"k": {"b": {"n": [1]}}})),
            "k: { a: 1,  b: {n: [1]} }  # c\n"
        );
        assert_eq!(
            in_place_only("k: {}\n", json!({"k": {"a": "b"}})),
            "k: {a: b}\n"
        );
        // A scalar that becomes a mapping in block style gets lines below its key.
        assert_eq!(
            in_place_only("k: v # c\nn: 1\n", json!({"k": {"a": 1, "b": [2]}})),
            "k: # c\n  a: 1\n  b:\n  - 2\nn: 1\n"
        );
    }

    #[test]
    fn quoting_style_is_kept() {
        let text = "a: 'one'\nb: \"two\"\nc: three\nd: '4'\n";
        let out = in_place_only(
            text,
            json!({"a": "it's", "b": "tab\there", "c": "true", "d": 5}),
        );
        assert_eq!(out, "a: 'it''s'\nb: \"tab\\there\"\nc: 'true'\nd: 5\n");
        // A tag is replaced along with its token.
        assert_eq!(
            in_place_only("a: !!str 12 # c\n", json!({"a": 13})),
            "a: 13 # c\n"
        );
        // A multi-line string into a plain scalar's place stays on its line.
        assert_eq!(
            in_place_only("a: x\nb: y\n", json!({"a": "l1\nl2"})),
            "a: \"l1\\nl2\"\nb: y\n"
        );
        // A block scalar stays a block scalar.
        assert_eq!(
            in_place_only("s: |\n  one\n  two\nt: 1\n", json!({"s": "one\nthree\n"})),
            "s: |\n  one\n  three\nt: 1\n"
        );
    }

    #[test]
    fn crlf_files_keep_crlf() {
        let text = "a: 1\r\nb:\r\n  c: x # k\r\n---\r\nd: 2\r\n";
        let out = patch(text, 0, json!({"b": {"c": "y", "e": {"f": 1}}, "a": null}));
        assert_eq!(
            out,
            "b:\r\n  c: y # k\r\n  e:\r\n    f: 1\r\n---\r\nd: 2\r\n"
        );
        let out = patch(text, 1, json!({"d": 3}));
        assert_eq!(out, text.replace("d: 2", "d: 3"));
    }

    #[test]
    fn block_sequences() {
        let text = "l:\n- a\n- k: v   # kv\n  m: n\n";
        assert_eq!(
            in_place_only(text, json!({"l": ["b", {"k": "w", "m": "n"}]})),
            "l:\n- b\n- k: w   # kv\n  m: n\n"
        );
        assert_eq!(
            in_place_only(text, json!({"l": ["a", {"k": "v", "m": "n", "o": 1}]})),
            "l:\n- a\n- k: v   # kv\n  m: n\n  o: 1\n"
        );
        // An indentless sequence whose first item starts with `-` itself.
        assert_eq!(
            in_place_only("f:\n- -1.5\na: v  # note\n", json!({"f": {"a": "v"}})),
            "f:\n  a: v\na: v  # note\n"
        );
        // Another length: the sequence is rewritten, at its indentation.
        assert_eq!(
            in_place_only("l:\n  - a\nz: 1\n", json!({"l": ["a", "b"]})),
            "l:\n  - a\n  - b\nz: 1\n"
        );
    }

    #[test]
    fn what_is_not_understood_falls_back_and_still_reads_right() {
        // Anchors, aliases and merge keys: the document is re-rendered, comments kept.
        let text = "# head\nbase: &b {x: 1}\nuse:\n  <<: *b\n  y: 2 # why\n";
        let out = patch(text, 0, json!({"use": {"y": 3}}));
        assert!(out.starts_with("# head\n"), "{out}");
        assert!(out.contains("y: 3 # why"), "{out}");
        // A multi-line plain scalar.
        let text = "a: one\n  two\nb: 1\n";
        let out = patch(text, 0, json!({"b": 2}));
        assert!(out.contains("b: 2"));
        // Unchanged value: unchanged text.
        assert_eq!(patch(DEFAULT_CONFIG, 0, json!({})), DEFAULT_CONFIG);
    }
}
