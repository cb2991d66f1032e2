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

/// Two buffers alive at the same time that may share bytes at a fixed
/// distance: `second` placed `offset` bytes past `first` (negative: before
/// it). A schedule guarantees that what is written to one never clobbers
/// what is still read from the other: a fused run's output written over
/// its input's rows as they die (`model::fused`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// The buffer the distance is measured from.
    pub first: usize,
    /// The buffer placed at that distance.
    pub second: usize,
    /// Bytes from `first`'s start to `second`'s.
    pub offset: isize,
}

impl Overlap {
    /// Where buffer `b` must start if its partner starts at `at`, when
    /// `b` and the partner are this pair's.
    fn place(&self, b: usize, partner: usize, at: usize) -> Option<usize> {
        match (b, partner) {
            _ if (b, partner) == (self.second, self.first) => at.checked_add_signed(self.offset),
            _ if (b, partner) == (self.first, self.second) => at.checked_add_signed(-self.offset),
            _ => None,
        }
    }
}

/// The lowest aligned offset at which buffer `b` fits beside the `placed`
/// buffers (index, offset) it overlaps in time, except where an overlap
/// pair with a placed partner puts it (if that spot is otherwise free); a
/// buffer whose partner comes later leaves it room below.
fn first_fit(
    buffers: &[Buffer],
    b: usize,
    placed: &[(usize, usize)],
    alignment: usize,
    overlaps: &[Overlap],
) -> usize {
    let buffer = &buffers[b];
    let busy_except = |partner: Option<usize>| {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&(p, _)| Some(p) != partner && buffers[p].overlaps_in_time(buffer))
            .map(|&(p, at)| (at, at + buffers[p].size))
            .collect();
        busy.sort_unstable();
        busy
    };
    for pair in overlaps {
        for &(p, at) in placed {
            let Some(spot) = pair.place(b, p, at) else {
                continue;
            };
            let free = busy_except(Some(p))
                .iter()
                .all(|&(start, end)| spot + buffer.size <= start || end <= spot);
            if spot.is_multiple_of(alignment) && free {
                return spot;
            }
        }
    }
    let unplaced = |p: usize| placed.iter().all(|&(q, _)| q != p);
    let room = overlaps
        .iter()
        .filter_map(|o| match b {
            _ if b == o.first && unplaced(o.second) => Some(-o.offset),
            _ if b == o.second && unplaced(o.first) => Some(o.offset),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut candidate = usize::try_from(room)
        .unwrap_or(0)
        .next_multiple_of(alignment);
    for (start, end) in busy_except(None) {
        if candidate + buffer.size <= start {
            break;
        }
        candidate = candidate.max(end.next_multiple_of(alignment));
    }
    candidate
}

/// Places buffers with first fit in the given order.
pub fn place_in_order(buffers: &[Buffer], order: &[usize], alignment: usize) -> Plan {
    place_overlapping(buffers, order, alignment, &[])
}

/// [`place_in_order`], where the `overlaps` pairs may share bytes.
fn place_overlapping(
    buffers: &[Buffer],
    order: &[usize],
    alignment: usize,
    overlaps: &[Overlap],
) -> Plan {
    let alignment = alignment.max(1);
    let mut offsets = std::vec![0; buffers.len()];
    let mut placed = Vec::with_capacity(buffers.len());
    for &i in order {
        let at = first_fit(buffers, i, &placed, alignment, overlaps);
        offsets[i] = at;
        placed.push((i, at));
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
    plan_overlapping(buffers, alignment, &[])
}

/// [`plan`], where the buffers of each of `overlaps` may share bytes at
/// its distance (each keeps its own life otherwise).
pub fn plan_overlapping(buffers: &[Buffer], alignment: usize, overlaps: &[Overlap]) -> Plan {
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
            place_overlapping(buffers, &order, alignment, overlaps)
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
    is_valid_overlapping(buffers, plan, &[])
}

/// [`is_valid`], but the pairs of `overlaps` may share bytes at exactly
/// their distance.
pub fn is_valid_overlapping(buffers: &[Buffer], plan: &Plan, overlaps: &[Overlap]) -> bool {
    let paired = |i: usize, j: usize| {
        overlaps
            .iter()
            .any(|o| o.place(j, i, plan.offsets[i]) == Some(plan.offsets[j]))
    };
    buffers.iter().enumerate().all(|(i, a)| {
        buffers[i + 1..]
            .iter()
            .zip(&plan.offsets[i + 1..])
            .enumerate()
            .all(|(k, (b, &bo))| {
                let ao = plan.offsets[i];
                !a.overlaps_in_time(b)
                    || ao + a.size <= bo
                    || bo + b.size <= ao
                    || paired(i, i + 1 + k)
            })
    })
}
