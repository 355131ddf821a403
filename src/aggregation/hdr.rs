//! The latency histogram of aggregated transaction metrics: an HDR histogram with APM Server's
//! parameters (values 1 µs to one hour, 2 significant figures), kept sparse.
//!
//! Counts are stored scaled by 1,000 so that sampled transactions, whose representative count
//! is fractional (1 / sample rate), add up without rounding each one; they are scaled back and
//! rounded when the histogram is written. A bucket is written as the highest value it holds
//! (1 s = 1,000,000 µs is written 1,003,519), exactly as APM Server writes it.

/// Counts are kept in thousandths of an event.
const COUNT_SCALE: f64 = 1000.0;
/// `2 * 10^2` values need single-unit resolution: 256 sub-buckets, half of them 128 (2^7).
const SUB_BUCKET_HALF_COUNT_MAGNITUDE: u32 = 7;
const SUB_BUCKET_COUNT: i64 = 1 << (SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1);
const SUB_BUCKET_HALF_COUNT: i64 = SUB_BUCKET_COUNT / 2;
const SUB_BUCKET_MASK: i64 = SUB_BUCKET_COUNT - 1;
/// Buckets needed to reach one hour in microseconds (3.6e9) from 256 by doubling: 25.
const BUCKET_COUNT: i64 = 25;
/// Slots of the dense array this sparse histogram stands for.
const COUNTS_LEN: i64 = (BUCKET_COUNT + 1) * SUB_BUCKET_HALF_COUNT;

/// A sparse HDR histogram of durations in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// (slot, count in thousandths), sorted by slot.
    slots: Vec<(u16, i64)>,
}

impl Histogram {
    /// Records `count` events (fractional for sampled events) of `micros` µs. Values outside
    /// the histogram's range (negative, or beyond about 2.4 hours) are not recorded, as APM
    /// Server does not record them.
    pub fn record(&mut self, micros: i64, count: f64) {
        let Some(slot) = slot_of(micros) else {
            return;
        };
        let scaled = (count * COUNT_SCALE).round() as i64;
        self.add(slot, scaled);
    }

    fn add(&mut self, slot: u16, scaled: i64) {
        match self.slots.binary_search_by_key(&slot, |(s, _)| *s) {
            Ok(i) => self.slots[i].1 += scaled,
            Err(i) => self.slots.insert(i, (slot, scaled)),
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for &(slot, scaled) in &other.slots {
            self.add(slot, scaled);
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Buckets held (the histogram's memory is this times 16 bytes).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// What APM Server writes: the total count, and per non-empty bucket its count and its
    /// highest equivalent value, in increasing order of value.
    pub fn buckets(&self) -> (u64, Vec<u64>, Vec<f64>) {
        let mut total = 0u64;
        let mut counts = Vec::with_capacity(self.slots.len());
        let mut values = Vec::with_capacity(self.slots.len());
        for &(slot, scaled) in &self.slots {
            if scaled <= 0 {
                continue;
            }
            let count = (scaled as f64 / COUNT_SCALE).round() as u64;
            counts.push(count);
            values.push(highest_equivalent_value(value_of_slot(slot)) as f64);
            total += count;
        }
        (total, counts, values)
    }
}

fn bucket_index(v: i64) -> i64 {
    let bits = 64 - i64::from((v | SUB_BUCKET_MASK).leading_zeros());
    bits - i64::from(SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1)
}

fn slot_of(v: i64) -> Option<u16> {
    if v < 0 {
        return None;
    }
    let bucket = bucket_index(v);
    let sub_bucket = v >> bucket;
    let slot =
        ((bucket + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + sub_bucket - SUB_BUCKET_HALF_COUNT;
    (slot < COUNTS_LEN).then_some(slot as u16)
}

/// The lowest value of a slot (the inverse of `slot_of`).
fn value_of_slot(slot: u16) -> i64 {
    let slot = i64::from(slot);
    let mut bucket = (slot >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1;
    let mut sub_bucket = (slot & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
    if bucket < 0 {
        sub_bucket -= SUB_BUCKET_HALF_COUNT;
        bucket = 0;
    }
    sub_bucket << bucket
}

fn highest_equivalent_value(v: i64) -> i64 {
    let bucket = bucket_index(v);
    let sub_bucket = v >> bucket;
    let lowest = sub_bucket << bucket;
    let size = if sub_bucket >= SUB_BUCKET_COUNT {
        1i64 << (bucket + 1)
    } else {
        1i64 << bucket
    };
    lowest + size - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_is_written_as_apm_server_writes_it() {
        let mut h = Histogram::default();
        h.record(1_000_000, 5.0);
        assert_eq!(h.buckets(), (5, vec![5], vec![1_003_519.0]));
    }

    #[test]
    fn values_map_to_the_highest_value_of_their_bucket() {
        // From APM Server's approvals: a 38.853 ms FaaS transaction is written 38911.
        let mut h = Histogram::default();
        h.record(38_853, 2.0);
        assert_eq!(h.buckets(), (2, vec![2], vec![38_911.0]));
        // Small values have single-unit resolution.
        for v in [0i64, 1, 5, 127, 128, 200, 255] {
            let slot = slot_of(v).unwrap();
            assert_eq!(value_of_slot(slot), v, "{v}");
            assert_eq!(highest_equivalent_value(v), v, "{v}");
        }
    }

    #[test]
    fn every_slot_round_trips_through_its_lowest_value() {
        for slot in 0..COUNTS_LEN as u16 {
            assert_eq!(slot_of(value_of_slot(slot)), Some(slot), "{slot}");
        }
    }

    #[test]
    fn fractional_counts_add_before_rounding() {
        let mut h = Histogram::default();
        for _ in 0..4 {
            h.record(1000, 2.5);
        }
        assert_eq!(h.buckets().0, 10);
        let mut g = Histogram::default();
        g.record(1000, 0.4);
        g.merge(&h);
        assert_eq!(g.buckets().1, vec![10]);
    }

    #[test]
    fn out_of_range_values_are_not_recorded() {
        let mut h = Histogram::default();
        h.record(-1, 1.0);
        h.record(i64::MAX, 1.0);
        assert!(h.is_empty());
        h.record(3_600_000_000, 1.0);
        assert_eq!(h.buckets().0, 1);
    }
}
