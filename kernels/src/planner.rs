//! Arena memory planner: assigns each activation tensor an offset so that
//! tensors alive at the same time never overlap, keeping the peak small.
//!
//! It is TFLM's greedy scheme (place each buffer at the lowest offset that
//! fits beside the buffers already placed whose lifetimes overlap it),
//! tried in several orders, keeping the best. The tests compare it with an
//! exact brute force.

use std::vec::Vec;

/// A buffer to place: its size and the inclusive range of operator steps
/// during which it must stay intact (from the op that writes it to the last
/// op that reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes.
    pub size: usize,
    /// First step it is alive.
    pub first: usize,
    /// Last step it is alive.
    pub last: usize,
}

impl Buffer {
    /// Whether two buffers are alive at a common step.
    pub fn overlaps_in_time(&self, other: &Buffer) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// The result: one offset per buffer, and the arena size they need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Offset of each buffer, in input order.
    pub offsets: Vec<usize>,
    /// Bytes of arena needed (the end of the highest buffer).
    pub peak: usize,
}

/// The lowest aligned offset at which `buffer` fits beside the `placed`
/// buffers it overlaps in time.
fn first_fit(buffer: &Buffer, placed: &[(Buffer, usize)], alignment: usize) -> usize {
    let mut busy: Vec<(usize, usize)> = placed
        .iter()
        .filter(|(b, _)| b.overlaps_in_time(buffer))
        .map(|&(b, at)| (at, at + b.size))
        .collect();
    busy.sort_unstable();
    let mut candidate = 0;
    for (start, end) in busy {
        if candidate + buffer.size <= start {
            break;
        }
        candidate = candidate.max(end.next_multiple_of(alignment));
    }
    candidate
}

/// Places buffers with first fit in the given order.
pub fn place_in_order(buffers: &[Buffer], order: &[usize], alignment: usize) -> Plan {
    let alignment = alignment.max(1);
    let mut offsets = std::vec![0; buffers.len()];
    let mut placed = Vec::with_capacity(buffers.len());
    for &i in order {
        let at = first_fit(&buffers[i], &placed, alignment);
        offsets[i] = at;
        placed.push((buffers[i], at));
    }
    let peak = buffers
        .iter()
        .zip(&offsets)
        .map(|(b, &at)| at + b.size)
        .max()
        .unwrap_or(0);
    Plan { offsets, peak }
}

/// Plans the arena: greedy first fit in four orders (largest first, as TFLM
/// does; longest-lived first; largest size x lifetime first; earliest
/// first), keeping the smallest peak. Offsets are multiples of `alignment`.
pub fn plan(buffers: &[Buffer], alignment: usize) -> Plan {
    type SortKey = fn(&Buffer) -> (isize, isize);
    let keys: [SortKey; 4] = [
        |b| (-(b.size as isize), b.first as isize),
        |b| (-((b.last - b.first) as isize), -(b.size as isize)),
        |b| {
            (
                -((b.size * (b.last - b.first + 1)) as isize),
                b.first as isize,
            )
        },
        |b| (b.first as isize, -(b.size as isize)),
    ];
    keys.iter()
        .map(|key| {
            let mut order: Vec<usize> = (0..buffers.len()).collect();
            order.sort_by_key(|&i| key(&buffers[i]));
            place_in_order(buffers, &order, alignment)
        })
        .min_by_key(|p| p.peak)
        .unwrap_or(Plan {
            offsets: Vec::new(),
            peak: 0,
        })
}

/// The total size of the buffers alive at each step, from step 0 to the
/// last step any buffer lives.
pub fn live_bytes(buffers: &[Buffer]) -> Vec<usize> {
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    (0..steps)
        .map(|t| {
            buffers
                .iter()
                .filter(|b| b.first <= t && t <= b.last)
                .map(|b| b.size)
                .sum()
        })
        .collect()
}

/// The largest total size of buffers alive at one step: no plan can beat it.
pub fn lower_bound(buffers: &[Buffer]) -> usize {
    live_bytes(buffers).into_iter().max().unwrap_or(0)
}

/// Whether a plan keeps every pair of simultaneously alive buffers apart.
pub fn is_valid(buffers: &[Buffer], plan: &Plan) -> bool {
    buffers.iter().enumerate().all(|(i, a)| {
        buffers[i + 1..]
            .iter()
            .zip(&plan.offsets[i + 1..])
            .all(|(b, &bo)| {
                let ao = plan.offsets[i];
                !a.overlaps_in_time(b) || ao + a.size <= bo || bo + b.size <= ao
            })
    })
}
