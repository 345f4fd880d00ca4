//! RE2's program size, which Envoy compares with `re2.max_program_size.error_level` (default 100)
//! before it accepts any regex.
//!
//! RE2 is C++ and no crate ships its source, so the size is computed here from the `regex-syntax`
//! parse of the pattern, instruction by instruction as RE2's compiler emits them before its
//! flattening pass (which only merges instructions): a bound that is never below RE2's count, so a
//! pattern that passes here passes in Envoy. `tests/route_cluster_oracle.rs` measures the bound
//! against the sizes real Envoys report.

use regex_syntax::hir::{Class, Hir, HirKind, Look};
use regex_syntax::utf8::Utf8Sequences;

/// RE2 refuses repetition counts above this (`bad repetition operator`).
const MAX_REPEAT: u32 = 1000;

/// Parses `pattern` as Envoy's RE2 would and returns its program-size bound.
///
/// RE2's `\d`, `\w`, `\s` and `\b` are ASCII, so the pattern is read with ASCII Perl classes;
/// only with `(?i)` is it read as Unicode, because RE2 folds case by Unicode rules (`k` also
/// matches U+212A), which costs instructions the ASCII reading would miss.
pub fn program_size(pattern: &str) -> Result<u64, String> {
    let folds_case = pattern.match_indices("(?").any(|(at, _)| {
        pattern[at + 2..].chars().take_while(|c| c.is_ascii_alphabetic() || *c == '-').any(|c| c == 'i')
    });
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(folds_case)
        .utf8(folds_case)
        .build()
        .parse(pattern)
        .map_err(|err| err.to_string().lines().last().unwrap_or_default().trim().to_string())?;
    check_repetitions(&hir)?;
    let anchored = starts_anchored(&hir);
    // The fail instruction, the match instruction, and the unanchored `.*?` prefix (two).
    Ok(2 + if anchored { 0 } else { 2 } + size(&hir))
}

fn check_repetitions(hir: &Hir) -> Result<(), String> {
    match hir.kind() {
        HirKind::Repetition(repetition) => {
            if repetition.min > MAX_REPEAT || repetition.max.is_some_and(|max| max > MAX_REPEAT) {
                return Err(format!("repetition counts above {MAX_REPEAT} are not allowed by RE2"));
            }
            check_repetitions(&repetition.sub)
        }
        HirKind::Capture(capture) => check_repetitions(&capture.sub),
        HirKind::Concat(items) | HirKind::Alternation(items) => items.iter().try_for_each(check_repetitions),
        _ => Ok(()),
    }
}

fn starts_anchored(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Look(Look::Start) => true,
        HirKind::Concat(items) => items.first().is_some_and(starts_anchored),
        HirKind::Capture(capture) => starts_anchored(&capture.sub),
        _ => false,
    }
}

/// Instructions for one character class: one byte range per UTF-8 byte of each sequence, and an
/// alternation between sequences.
fn class_size(class: &Class) -> u64 {
    let sequences: Vec<u64> = match class {
        Class::Unicode(class) => class
            .iter()
            .flat_map(|range| Utf8Sequences::new(range.start(), range.end()))
            .map(|sequence| sequence.len() as u64)
            .collect(),
        // Read without Unicode, a class that takes bytes above 0x7f (`.`, `[^a]`) stands for every
        // non-ASCII character, which RE2 compiles as UTF-8 sequences.
        Class::Bytes(class) => {
            let ascii =
                class.iter().filter(|r| r.start() < 0x80).map(|r| (r.start() as char, (r.end().min(0x7f)) as char));
            let above = class.iter().any(|r| r.end() >= 0x80).then_some(('\u{80}', '\u{10ffff}'));
            ascii
                .chain(above)
                .flat_map(|(start, end)| Utf8Sequences::new(start, end))
                .map(|sequence| sequence.len() as u64)
                .collect()
        }
    };
    if sequences.is_empty() {
        // An empty class can never match: RE2 compiles it to the fail instruction.
        return 1;
    }
    sequences.iter().sum::<u64>() + sequences.len() as u64 - 1
}

fn size(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty => 1,
        HirKind::Literal(literal) => literal.0.len() as u64,
        HirKind::Class(class) => class_size(class),
        HirKind::Look(_) => 1,
        HirKind::Capture(capture) => 2 + size(&capture.sub),
        HirKind::Concat(items) => items.iter().map(size).sum(),
        HirKind::Alternation(items) => items.iter().map(size).sum::<u64>() + items.len() as u64 - 1,
        HirKind::Repetition(repetition) => {
            let s = size(&repetition.sub);
            let min = u64::from(repetition.min);
            match repetition.max {
                // x{n,}: n-1 copies and x+ (x* is a loop: alternation and body, two more for a
                // body that can match empty).
                None if min == 0 => s + 2,
                None => (min - 1) * s + s + 1,
                // x{n,m}: n copies, then m-n nested optional copies.
                Some(max) => {
                    let max = u64::from(max);
                    if max == 0 {
                        1
                    } else {
                        min * s + (max - min) * (s + 1)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_grow_with_repetition_and_reject_bad_syntax() {
        let small = program_size("^/api/v[0-9]+/").unwrap();
        let big =
            program_size("^/api/v[0-9]+/(users|orders|products|invoices)/[a-f0-9-]{36}/(details|history)$").unwrap();
        assert!(small < 100 && big > 100, "{small} {big}");
        assert!(program_size("/(unclosed").is_err());
        assert!(program_size("a{2,5}").unwrap() > program_size("a{2}").unwrap());
    }
}
