//! How many distinct groups overflowed: exact while few, then a HyperLogLog sketch, so that the
//! memory an overflow bucket holds is bounded whatever the cardinality of the input.
//!
//! APM Server estimates the same number with a HyperLogLog sketch (`overflow_count`); exact
//! counts below [`EXACT_LIMIT`] make small overflows (the ones tests and operators look at)
//! read exactly.

use std::collections::HashSet;

/// Distinct hashes remembered exactly before switching to the sketch.
pub const EXACT_LIMIT: usize = 256;
/// 2^10 registers: about 3% standard error, 1 KiB.
const PRECISION: u32 = 10;
const REGISTERS: usize = 1 << PRECISION;

/// An estimate of the number of distinct 64-bit hashes inserted.
#[derive(Clone, Debug, Default)]
pub struct Distinct {
    exact: HashSet<u64>,
    registers: Option<Box<[u8; REGISTERS]>>,
}

impl Distinct {
    /// Inserts one hash (a well-mixed 64-bit hash of the group's key).
    pub fn insert(&mut self, hash: u64) {
        if let Some(r) = &mut self.registers {
            insert_register(r, hash);
            return;
        }
        self.exact.insert(hash);
        if self.exact.len() > EXACT_LIMIT {
            let mut r = Box::new([0u8; REGISTERS]);
            for h in self.exact.drain() {
                insert_register(&mut r, h);
            }
            self.exact = HashSet::new();
            self.registers = Some(r);
        }
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.registers.is_none()
    }

    /// The estimated number of distinct hashes.
    pub fn estimate(&self) -> u64 {
        let Some(r) = &self.registers else {
            return self.exact.len() as u64;
        };
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = r.iter().map(|&v| 2f64.powi(-i32::from(v))).sum();
        let raw = alpha * m * m / sum;
        let zeros = r.iter().filter(|&&v| v == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            // Linear counting for small cardinalities.
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }

    /// Adds what `other` counted.
    pub fn merge(&mut self, other: &Distinct) {
        match &other.registers {
            None => other.exact.iter().for_each(|&h| self.insert(h)),
            Some(theirs) => {
                self.insert_all_into_registers();
                if let Some(mine) = &mut self.registers {
                    for (a, b) in mine.iter_mut().zip(theirs.iter()) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
    }

    fn insert_all_into_registers(&mut self) {
        if self.registers.is_none() {
            let mut r = Box::new([0u8; REGISTERS]);
            for h in self.exact.drain() {
                insert_register(&mut r, h);
            }
            self.registers = Some(r);
        }
    }
}

fn insert_register(r: &mut [u8; REGISTERS], hash: u64) {
    let index = (hash >> (64 - PRECISION)) as usize;
    let rest = (hash << PRECISION) | (1 << (PRECISION - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    r[index] = r[index].max(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh64::xxh64;

    #[test]
    fn exact_while_few() {
        let mut d = Distinct::default();
        for i in 0..100u64 {
            d.insert(xxh64(&i.to_le_bytes(), 0));
            d.insert(xxh64(&i.to_le_bytes(), 0));
        }
        assert_eq!(d.estimate(), 100);
    }

    #[test]
    fn estimates_within_a_few_percent_when_many() {
        let mut d = Distinct::default();
        for i in 0..100_000u64 {
            d.insert(xxh64(&i.to_le_bytes(), 0));
        }
        let e = d.estimate() as f64;
        assert!((e - 100_000.0).abs() / 100_000.0 < 0.1, "{e}");
        let mut other = Distinct::default();
        for i in 50_000..150_000u64 {
            other.insert(xxh64(&i.to_le_bytes(), 0));
        }
        d.merge(&other);
        let e = d.estimate() as f64;
        assert!((e - 150_000.0).abs() / 150_000.0 < 0.1, "{e}");
    }
}
