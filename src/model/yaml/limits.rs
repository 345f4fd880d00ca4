//! Budgets for one YAML document, checked before serde_yaml builds anything.
//!
//! serde_yaml cannot bound what a document costs: it expands aliases while it builds values (a
//! 10 KiB document of nested aliases becomes about 100 MiB), and libyaml's scanner takes time
//! quadratic in the nesting depth of flow collections (`{a: {a: ...}}`), all before serde_yaml's
//! own recursion limit is checked. So each document is first streamed through the same libyaml
//! parser, event by event, keeping only counters: nesting depth, and the nodes and scalar bytes
//! the document expands to with every alias replaced by a copy of its anchor, as serde_yaml will
//! build it. The walk stops at the first budget it would exceed, so its own cost is bounded by
//! the budgets too. Syntax errors are left to serde_yaml (the same parser), which reports them.

use std::collections::HashMap;
use std::ffi::CStr;
use std::mem::MaybeUninit;

/// What one document may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Nested mappings and sequences.
    pub max_depth: usize,
    /// Scalars, mappings and sequences, counting every node an alias stands for.
    pub max_nodes: u64,
    /// Bytes of every scalar, counting every scalar an alias stands for.
    pub max_scalar_bytes: u64,
}

/// A budget the document would exceed, and where (1-based line and column) that became clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub message: String,
    pub line: u64,
    pub column: u64,
}

/// Where in the document an event starts.
#[derive(Debug, Clone, Copy)]
struct At {
    line: u64,
    column: u64,
}

impl At {
    fn breach(self, message: String) -> Breach {
        Breach { message, line: self.line, column: self.column }
    }
}

/// Size of a subtree once aliases are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: u64,
    scalar_bytes: u64,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.scalar_bytes = self.scalar_bytes.saturating_add(other.scalar_bytes);
    }
}

/// An open mapping or sequence: its expanded size so far, and its anchor if it has one (its size
/// is recorded under that name when it closes).
struct Open {
    size: Size,
    anchor: Option<Vec<u8>>,
}

struct Walk<'a> {
    limits: &'a DocumentLimits,
    open: Vec<Open>,
    anchors: HashMap<Vec<u8>, Size>,
    total: Size,
}

impl Walk<'_> {
    /// A node of `size` (a scalar, an alias's expansion, or a collection's own node) appears.
    fn add(&mut self, size: Size, at: At) -> Result<(), Breach> {
        self.total.add(size);
        if let Some(parent) = self.open.last_mut() {
            parent.size.add(size);
        }
        if self.total.nodes > self.limits.max_nodes {
            let max = self.limits.max_nodes;
            return Err(at.breach(format!("expands to more than {max} nodes (aliases included)")));
        }
        if self.total.scalar_bytes > self.limits.max_scalar_bytes {
            let max = self.limits.max_scalar_bytes;
            return Err(at.breach(format!("expands to more than {max} bytes of scalars (aliases included)")));
        }
        Ok(())
    }

    fn open(&mut self, anchor: Option<Vec<u8>>, at: At) -> Result<(), Breach> {
        self.add(Size { nodes: 1, scalar_bytes: 0 }, at)?;
        self.open.push(Open { size: Size { nodes: 1, scalar_bytes: 0 }, anchor });
        if self.open.len() > self.limits.max_depth {
            let max = self.limits.max_depth;
            return Err(at.breach(format!("nests mappings and sequences deeper than {max} levels")));
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some(Open { size, anchor: Some(anchor) }) = self.open.pop() {
            self.anchors.insert(anchor, size);
        }
    }
}

/// Owns an initialized libyaml parser; deletes it on drop.
struct Parser(Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>);

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: only constructed after yaml_parser_initialize succeeded.
        unsafe { unsafe_libyaml::yaml_parser_delete(self.0.as_mut_ptr()) }
    }
}

/// Whether `text` could exceed `limits` at all, by counts that never underestimate: without an
/// anchor (`&`) nothing expands; every mapping or sequence opens at one of `[`, `{`, `?`, `:`, or
/// `-` before a blank, so the depth cannot exceed their number; and every node is a scalar with
/// bytes of its own, a collection opened by one of those characters, or one of the (at most two)
/// empty scalars such a character implies (`[:, :]`), so there are at most three nodes a byte.
/// Most documents (a Mapping, a TLSContext) are far below all of it, and skip the event walk.
pub fn could_exceed(text: &str, limits: &DocumentLimits) -> bool {
    let length = text.len() as u64;
    if text.contains('&') || length.saturating_mul(3) > limits.max_nodes || length > limits.max_scalar_bytes {
        return true;
    }
    let bytes = text.as_bytes();
    let openers = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| match b {
            b'[' | b'{' | b'?' | b':' => true,
            b'-' => bytes.get(i + 1).is_none_or(|next| next.is_ascii_whitespace()),
            _ => false,
        })
        .count();
    openers > limits.max_depth
}

/// Checks `text` (one document) against `limits`. `Ok` also when the text is not valid YAML:
/// serde_yaml reports that, from the same parser.
pub fn check(text: &str, limits: &DocumentLimits) -> Result<(), Breach> {
    if !could_exceed(text, limits) {
        return Ok(());
    }
    check_events(text, limits)
}

/// The event walk itself.
fn check_events(text: &str, limits: &DocumentLimits) -> Result<(), Breach> {
    let mut walk = Walk { limits, open: Vec::new(), anchors: HashMap::new(), total: Size::default() };
    // The parser keeps a pointer to itself (its read handler's data), so it lives in a Box that
    // is never moved out of; `text` outlives it.
    let mut boxed: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>> = Box::new(MaybeUninit::uninit());
    // SAFETY: yaml_parser_initialize fully initializes the struct it is given.
    if unsafe { unsafe_libyaml::yaml_parser_initialize(boxed.as_mut_ptr()) }.fail {
        return Ok(()); // out of memory: serde_yaml will fail the same way
    }
    let mut parser = Parser(boxed);
    let raw = parser.0.as_mut_ptr();
    // SAFETY: `raw` is initialized; `text` is valid for the parser's whole life (dropped below).
    unsafe {
        unsafe_libyaml::yaml_parser_set_encoding(raw, unsafe_libyaml::YAML_UTF8_ENCODING);
        unsafe_libyaml::yaml_parser_set_input_string(raw, text.as_ptr(), text.len() as u64);
    }
    loop {
        let mut event = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: `raw` is an initialized parser; on success `event` is initialized and must be
        // deleted, which happens right after its fields are read.
        let outcome = unsafe {
            if unsafe_libyaml::yaml_parser_parse(raw, event.as_mut_ptr()).fail {
                return Ok(());
            }
            let event = event.as_mut_ptr();
            let outcome = visit(&mut walk, &*event);
            unsafe_libyaml::yaml_event_delete(event);
            outcome
        };
        match outcome {
            Ok(true) => continue,
            Ok(false) => return Ok(()),
            Err(breach) => return Err(breach),
        }
    }
}

/// Accounts for one event; `Ok(false)` at the end of the stream.
///
/// SAFETY: `event` must come from `yaml_parser_parse`, so that the union field matching its type
/// is the initialized one and its anchors are NUL-terminated strings (or null).
unsafe fn visit(walk: &mut Walk<'_>, event: &unsafe_libyaml::yaml_event_t) -> Result<bool, Breach> {
    let at = At { line: event.start_mark.line + 1, column: event.start_mark.column + 1 };
    let anchor = |ptr: *const u8| -> Option<Vec<u8>> {
        // SAFETY: per the function's contract.
        (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr.cast()) }.to_bytes().to_vec())
    };
    match event.type_ {
        unsafe_libyaml::YAML_STREAM_END_EVENT => return Ok(false),
        unsafe_libyaml::YAML_SCALAR_EVENT => {
            let scalar = unsafe { event.data.scalar };
            let size = Size { nodes: 1, scalar_bytes: scalar.length };
            walk.add(size, at)?;
            if let Some(name) = anchor(scalar.anchor) {
                walk.anchors.insert(name, size);
            }
        }
        unsafe_libyaml::YAML_ALIAS_EVENT => {
            let name = anchor(unsafe { event.data.alias.anchor }).unwrap_or_default();
            // An unknown alias is an error serde_yaml reports; count it as one node meanwhile.
            let size = walk.anchors.get(&name).copied().unwrap_or(Size { nodes: 1, scalar_bytes: 0 });
            walk.add(size, at)?;
        }
        unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
            walk.open(anchor(unsafe { event.data.sequence_start.anchor }), at)?
        }
        unsafe_libyaml::YAML_MAPPING_START_EVENT => {
            walk.open(anchor(unsafe { event.data.mapping_start.anchor }), at)?
        }
        unsafe_libyaml::YAML_SEQUENCE_END_EVENT | unsafe_libyaml::YAML_MAPPING_END_EVENT => walk.close(),
        _ => {}
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DocumentLimits = DocumentLimits { max_depth: 8, max_nodes: 1000, max_scalar_bytes: 10_000 };

    #[test]
    fn ordinary_documents_pass() {
        assert_eq!(check("a: 1\nb: [x, y, {c: d}]\n", &LIMITS), Ok(()));
        assert_eq!(check("base: &b {x: 1}\nm:\n  <<: *b\n", &LIMITS), Ok(()));
        // Syntax errors are serde_yaml's to report.
        assert_eq!(check("a: [\n", &LIMITS), Ok(()));
    }

    #[test]
    fn nested_aliases_count_what_they_expand_to() {
        // 10 × 10 × 10 scalars from a few dozen bytes.
        let text = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
        let breach = check(text, &LIMITS).unwrap_err();
        assert!(breach.message.contains("more than 1000 nodes"), "{breach:?}");
        assert_eq!(breach.line, 3);
    }

    #[test]
    fn aliased_scalars_count_their_bytes() {
        let big = "x".repeat(4000);
        let text = format!("a: &a {big}\nb: [*a, *a]\n");
        let breach = check(&text, &LIMITS).unwrap_err();
        assert!(breach.message.contains("bytes of scalars"), "{breach:?}");
    }

    #[test]
    fn deep_flow_nesting_stops_at_the_limit() {
        let text = format!("{}x{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        let breach = check(&text, &LIMITS).unwrap_err();
        assert!(breach.message.contains("deeper than 8"), "{breach:?}");
        // The walk stopped at the ninth `{`, not after scanning the whole line.
        assert_eq!((breach.line, breach.column), (1, 33));
    }

    /// SplitMix64, seeded: the same documents on every run.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The shortcut is sound: over many seeded documents built from YAML's structural
    /// characters, none that the shortcut lets through would breach a budget.
    #[test]
    fn documents_the_shortcut_skips_never_breach() {
        const PIECES: &[&str] = &[
            "[", "]", "{", "}", ", ", ",", ": ", ":", "- ", "-", "? ", "?", "\n", "\n  ", "\n    ", "a", "bc", "'q'",
            "\"d\"", " ", "*x", "#c\n", "|\n  t\n", "!!str ", "x-y", "--- ",
        ];
        let limits = DocumentLimits { max_depth: 6, max_nodes: 90, max_scalar_bytes: 60 };
        let (mut skipped_valid, mut breaching) = (0, 0);
        // The densest documents there are (nodes per byte, depth per byte), then random ones.
        let dense = (1..60).flat_map(|n| {
            [
                format!("[{}]", "a: ,".repeat(n)),
                "?\n".repeat(n),
                "-\n".repeat(n),
                format!("[{}]", "a,".repeat(n)),
                format!("{}x", "- ".repeat(n)),
                format!("{}x{}", "[".repeat(n), "]".repeat(n)),
                (0..n).map(|i| format!("{}a:\n", " ".repeat(i))).collect(),
            ]
        });
        let random = (0..30_000u64).map(|seed| {
            let mut state = seed;
            let length = 1 + next(&mut state) % 60;
            (0..length).map(|_| PIECES[(next(&mut state) % PIECES.len() as u64) as usize]).collect::<String>()
        });
        for (seed, text) in dense.chain(random).enumerate() {
            let breach = check_events(&text, &limits).is_err();
            breaching += usize::from(breach);
            if !could_exceed(&text, &limits) {
                assert!(!breach, "seed {seed}: the shortcut skipped {text:?}, which breaches");
                skipped_valid += usize::from(serde_yaml::from_str::<serde_yaml::Value>(&text).is_ok());
            }
        }
        // Both sides were explored: valid documents skipped, and documents over the budgets.
        assert!(skipped_valid > 500 && breaching > 100, "{skipped_valid} valid skipped, {breaching} breaching");
    }

    #[test]
    fn block_nesting_counts_too() {
        let text: String =
            (0..12).map(|i| format!("{}a:\n", "  ".repeat(i))).collect::<String>() + &"  ".repeat(12) + "x\n";
        assert!(check(&text, &LIMITS).unwrap_err().message.contains("deeper"));
    }
}
