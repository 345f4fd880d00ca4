//! Emissary's processing order of the Mappings ([`processing_order`]: a stable sort of the
//! Mappings of this instance, in source order, by `name.namespace`), remembered from one compile
//! to the next.
//!
//! The sources assemble the model file by file, and an unchanged file's resources are the very
//! same shared values as last time; so a change to one file replaces one stretch of the model's
//! Mappings and leaves the ones before and after it where they were, in the same relative
//! order. Only that stretch's Mappings are sorted, and each is put into place by a binary
//! search: sorting every Mapping again was a fourteenth of a one-Mapping reload at 50,000
//! Mappings. The result is the same as a fresh sort's by construction: both sort by processing
//! order and then by source position (what a stable sort keeps), a total order.

use super::select::processing_order;
use super::Options;
use crate::model::{Mapping, Model};
use std::cmp::Ordering;
use std::sync::Arc;

/// The order of the last compile's Mappings.
#[derive(Debug, Clone, Default)]
pub struct ProcessingOrder {
    /// The model it is the order of. Held, so that none of its resources' addresses, which tell
    /// the next model's unchanged resources apart, can be taken by another resource.
    model: Option<Arc<Model>>,
    /// The instance its Mappings were selected for.
    ambassador_id: String,
    /// Positions in `model.mappings` of the instance's Mappings, in processing order.
    sorted: Vec<u32>,
}

/// A stretch of new Mappings larger than this share of them is sorted with the rest: the binary
/// searches would cost more than one sort.
const RESORT_SHARE: usize = 8;

impl ProcessingOrder {
    /// The Mappings of `model` that belong to this instance, in processing order; and the order
    /// the next compile starts from.
    pub fn sort<'m>(self, model: &'m Arc<Model>, options: &Options) -> (Vec<&'m Mapping>, ProcessingOrder) {
        let now = &model.mappings;
        let before = self.model.as_ref().filter(|_| self.ambassador_id == options.ambassador_id);
        let sorted = match before {
            Some(before) if Arc::ptr_eq(before, model) => self.sorted,
            Some(before) => resorted(&before.mappings, now, self.sorted, options, now.len() / RESORT_SHARE)
                .unwrap_or_else(|| sorted_afresh(now, options)),
            None => sorted_afresh(now, options),
        };
        let mappings = sorted.iter().map(|&at| &now[at as usize]).collect();
        let kept = ProcessingOrder { model: Some(model.clone()), ambassador_id: options.ambassador_id.clone(), sorted };
        (mappings, kept)
    }
}

/// Positions by processing order, then by position.
fn order(mappings: &[Mapping]) -> impl Fn(&u32, &u32) -> Ordering + '_ {
    |&a, &b| processing_order(&mappings[a as usize], &mappings[b as usize]).then(a.cmp(&b))
}

/// The positions in `range` whose Mappings belong to this instance.
fn selected<'m>(
    mappings: &'m [Mapping],
    range: std::ops::Range<usize>,
    options: &'m Options,
) -> impl Iterator<Item = u32> + 'm {
    range.filter(|&at| mappings[at].meta.belongs_to(&options.ambassador_id)).map(|at| at as u32)
}

fn sorted_afresh(mappings: &[Mapping], options: &Options) -> Vec<u32> {
    let mut sorted: Vec<u32> = selected(mappings, 0..mappings.len(), options).collect();
    // A total order: unstable sorting gives the one result.
    sorted.sort_unstable_by(order(mappings));
    sorted
}

/// `sorted` (the order of `before`) for `now`: the Mappings before and after the stretch that
/// changed keep their order (shifted by the change in length), and the stretch's are sorted and
/// merged in; `None` when the stretch holds more than `max_fresh` Mappings.
fn resorted(
    before: &[Mapping],
    now: &[Mapping],
    sorted: Vec<u32>,
    options: &Options,
    max_fresh: usize,
) -> Option<Vec<u32>> {
    let same = |(a, b): &(&Mapping, &Mapping)| Arc::ptr_eq(&a.meta, &b.meta);
    let head = before.iter().zip(now).take_while(same).count();
    let most = before.len().min(now.len()) - head;
    let tail = before.iter().rev().zip(now.iter().rev()).take(most).take_while(same).count();
    let (gone_until, fresh_until) = (before.len() - tail, now.len() - tail);
    if fresh_until - head > max_fresh {
        return None;
    }
    let kept: Vec<u32> = sorted
        .into_iter()
        .filter(|&at| (at as usize) < head || at as usize >= gone_until)
        .map(|at| if at as usize >= gone_until { (at as usize - gone_until + fresh_until) as u32 } else { at })
        .collect();
    let mut fresh: Vec<u32> = selected(now, head..fresh_until, options).collect();
    let order = order(now);
    fresh.sort_unstable_by(&order);
    let mut merged = Vec::with_capacity(kept.len() + fresh.len());
    let mut from = 0;
    for at in fresh {
        let until = from + kept[from..].partition_point(|earlier| order(earlier, &at) == Ordering::Less);
        merged.extend_from_slice(&kept[from..until]);
        merged.push(at);
        from = until;
    }
    merged.extend_from_slice(&kept[from..]);
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_documents;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    /// A file of Mappings named from `names` (several files may hold one name: duplicates, which
    /// the order keeps in source order), some of another instance.
    fn file(index: usize, names: &[(u8, bool)]) -> Model {
        let yaml: String = names
            .iter()
            .map(|(name, other)| {
                let id = if *other { "ambassador_id: [other]\n" } else { "" };
                // `a.b` in namespace `c` and `a` in `b.c` share the key `a.b.c`: ties.
                let (name, namespace) = match name % 4 {
                    0 => (format!("m{}.x", name / 4), "y".to_string()),
                    1 => (format!("m{}", name / 4), "x.y".to_string()),
                    _ => (format!("m{name}"), "default".to_string()),
                };
                format!("---\nkind: Mapping\nname: {name}\nnamespace: {namespace}\nprefix: /p/\nservice: s\n{id}")
            })
            .collect();
        parse_documents(&format!("f{index}.yaml"), &yaml).0
    }

    fn assemble(files: &[Arc<Model>]) -> Arc<Model> {
        let mut model = Model::default();
        for file in files {
            model.extend(Model::clone(file));
        }
        Arc::new(model)
    }

    fn ids(mappings: &[&Mapping]) -> Vec<String> {
        mappings.iter().map(|m| format!("{} {}", m.meta.id, m.meta.origin)).collect()
    }

    proptest! {
        #![proptest_config(Config { rng_seed: RngSeed::Fixed(7), failure_persistence: None, ..Config::default() })]

        /// After any sequence of file replacements, the remembered order is the order a fresh
        /// stable sort of the model gives.
        #[test]
        fn a_remembered_order_is_the_order_of_a_fresh_sort(
            initial in proptest::collection::vec(proptest::collection::vec((0u8..24, proptest::bool::weighted(0.2)), 0..6), 1..40),
            edits in proptest::collection::vec((0usize..40, proptest::collection::vec((0u8..24, proptest::bool::weighted(0.2)), 0..6)), 1..8),
        ) {
            let options = Options::default();
            let mut files: Vec<Arc<Model>> = initial.iter().enumerate().map(|(i, names)| Arc::new(file(i, names))).collect();
            let mut memo = ProcessingOrder::default();
            for (at, names) in edits {
                let at = at % files.len();
                files[at] = Arc::new(file(at, &names));
                let model = assemble(&files);
                let mut fresh: Vec<&Mapping> =
                    model.mappings.iter().filter(|m| m.meta.belongs_to(&options.ambassador_id)).collect();
                fresh.sort_by(|a, b| processing_order(a, b));
                // Merged in however large the stretch (the threshold only saves time).
                if let Some(before) = &memo.model {
                    let merged = resorted(&before.mappings, &model.mappings, memo.sorted.clone(), &options, usize::MAX)
                        .expect("no limit");
                    let merged: Vec<&Mapping> = merged.iter().map(|&at| &model.mappings[at as usize]).collect();
                    prop_assert_eq!(ids(&merged), ids(&fresh));
                }
                let (remembered, next) = memo.sort(&model, &options);
                prop_assert_eq!(ids(&remembered), ids(&fresh));
                memo = next;
            }
        }
    }
}
