//! The shadowing index: finds an earlier access rule that makes a later one unreachable (W101).

use std::collections::HashMap;

/// Finds an earlier rule that makes a later one unreachable.
///
/// Conditions are in disjunctive normal form over interned condition texts. A later rule can
/// never match when each of its conjunctions contains every condition of some earlier
/// conjunction: whatever it would match, an earlier rule matched first. Earlier conjunctions are
/// indexed by their smallest condition, so checking a rule costs about its own size, not the
/// number of rules before it.
#[derive(Default)]
pub(super) struct ShadowIndex {
    atoms: HashMap<String, u32>,
    conjunctions: Vec<(Vec<u32>, usize)>,
    by_first: HashMap<u32, Vec<usize>>,
    always: Option<usize>,
}

impl ShadowIndex {
    pub(super) fn intern(&mut self, dnf: &[Vec<String>]) -> Vec<Vec<u32>> {
        dnf.iter()
            .map(|conj| {
                let mut ids: Vec<u32> = conj
                    .iter()
                    .map(|atom| {
                        let next = self.atoms.len() as u32;
                        *self.atoms.entry(atom.clone()).or_insert(next)
                    })
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            })
            .collect()
    }

    /// The earlier rule covering the first conjunction, when every conjunction is covered.
    pub(super) fn shadowing(&self, later: &[Vec<u32>]) -> Option<usize> {
        // A condition with no conjunction never matches: nothing to shadow.
        let mut first = None;
        for conj in later {
            let covering = self.always.or_else(|| {
                conj.iter().find_map(|atom| {
                    self.by_first.get(atom)?.iter().find_map(|&i| {
                        let (earlier, rule) = &self.conjunctions[i];
                        earlier
                            .iter()
                            .all(|a| conj.binary_search(a).is_ok())
                            .then_some(*rule)
                    })
                })
            })?;
            first.get_or_insert(covering);
        }
        first
    }

    pub(super) fn add(&mut self, dnf: Vec<Vec<u32>>, rule: usize) {
        for conj in dnf {
            match conj.first() {
                None => {
                    self.always.get_or_insert(rule);
                }
                Some(&head) => {
                    self.by_first
                        .entry(head)
                        .or_default()
                        .push(self.conjunctions.len());
                    self.conjunctions.push((conj, rule));
                }
            }
        }
    }
}
