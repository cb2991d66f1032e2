//! The memory planner against an exact brute force on small graphs.

mod common;

use common::Rng;
use kernels::planner::{self, Buffer};

/// The optimal peak: the best first-fit placement over every order.
///
/// Exact because some order reaches the optimum: take an optimal placement
/// and place buffers by increasing optimal offset. By induction each lands
/// at or below its optimal offset, since every earlier buffer it conflicts
/// with ends at or below where the optimum put that buffer's end, which is
/// at or below this buffer's optimal offset; so that slot is always free.
fn brute_force_peak(buffers: &[Buffer]) -> usize {
    fn permute(order: &mut Vec<usize>, k: usize, buffers: &[Buffer], best: &mut usize) {
        if k == order.len() {
            *best = (*best).min(planner::place_in_order(buffers, order, 1).peak);
            return;
        }
        for i in k..order.len() {
            order.swap(k, i);
            permute(order, k + 1, buffers, best);
            order.swap(k, i);
        }
    }
    let mut best = usize::MAX;
    permute(&mut (0..buffers.len()).collect(), 0, buffers, &mut best);
    best
}

fn random_graph(rng: &mut Rng) -> Vec<Buffer> {
    let n = rng.range(2, 7) as usize;
    (0..n)
        .map(|_| {
            let first = rng.range(0, 6) as usize;
            Buffer {
                size: rng.range(1, 12) as usize * 16,
                first,
                last: first + rng.range(0, 3) as usize,
            }
        })
        .collect()
}

#[test]
fn chain_needs_only_two_neighbours() {
    // A sequential network: tensor i is written by op i and read by op i + 1.
    let sizes = [3072, 8192, 8192, 4096, 4096, 2048, 640, 40];
    let buffers: Vec<Buffer> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| Buffer {
            size,
            first: i,
            last: i + 1,
        })
        .collect();
    let plan = planner::plan(&buffers, 16);
    assert!(planner::is_valid(&buffers, &plan));
    assert_eq!(plan.peak, 16384); // max over i of size[i] + size[i + 1]
    assert_eq!(planner::lower_bound(&buffers), 16384);
    assert_eq!(brute_force_peak(&buffers), 16384);
}

#[test]
fn greedy_matches_brute_force_on_random_graphs() {
    let mut rng = Rng(2026);
    let (mut optimal, mut worst_ratio) = (0, 1.0f64);
    for _ in 0..400 {
        let buffers = random_graph(&mut rng);
        let plan = planner::plan(&buffers, 1);
        let best = brute_force_peak(&buffers);
        assert!(
            planner::is_valid(&buffers, &plan),
            "invalid plan for {buffers:?}"
        );
        assert!(plan.peak >= best && best >= planner::lower_bound(&buffers));
        optimal += usize::from(plan.peak == best);
        worst_ratio = worst_ratio.max(plan.peak as f64 / best as f64);
    }
    println!("optimal on {optimal}/400, worst ratio {worst_ratio:.3}");
    assert_eq!(
        (optimal, (worst_ratio * 1000.0).round() as i64),
        (OPTIMAL, WORST_PERMILLE)
    );
}

/// Measured with the seed above: greedy in four orders is optimal on 395 of
/// 400 graphs and never worse than 1.167x the optimum.
const OPTIMAL: usize = 395;
const WORST_PERMILLE: i64 = 1167;

#[test]
fn alignment_is_respected() {
    let buffers = [
        Buffer {
            size: 5,
            first: 0,
            last: 1,
        },
        Buffer {
            size: 7,
            first: 1,
            last: 2,
        },
        Buffer {
            size: 3,
            first: 1,
            last: 1,
        },
    ];
    let plan = planner::plan(&buffers, 16);
    assert!(plan.offsets.iter().all(|o| o % 16 == 0));
    assert!(planner::is_valid(&buffers, &plan));
    // All three are alive at step 1: slots 0, 16 and 32, the 3-byte buffer on top.
    assert_eq!(plan.peak, 35);
}

#[test]
fn overlap_pairs_share_bytes_at_their_distance_only() {
    let b = |size, first, last| Buffer { size, first, last };
    // A run's input (steps 0-1) whose output (1-2) may start 64 bytes
    // before it: 320 bytes together instead of 384.
    let buffers = [b(256, 0, 1), b(128, 1, 2)];
    let pair = planner::Overlap {
        first: 0,
        second: 1,
        offset: -64,
    };
    assert_eq!(planner::plan(&buffers, 16).peak, 384);
    let shared = planner::plan_overlapping(&buffers, 16, &[pair]);
    // The input, placed first, left 64 bytes below it for the output.
    assert_eq!(shared.offsets, [64, 0]);
    assert_eq!(shared.peak, 320);
    assert!(planner::is_valid_overlapping(&buffers, &shared, &[pair]));
    assert!(!planner::is_valid(&buffers, &shared));
    // At any other distance the pair is a clash.
    let other = planner::Overlap {
        offset: -48,
        ..pair
    };
    assert!(!planner::is_valid_overlapping(&buffers, &shared, &[other]));
    // A spot another live buffer holds is not taken: first fit instead.
    let crowded = [b(256, 0, 1), b(128, 1, 2), b(64, 0, 2)];
    let plan = planner::plan_overlapping(&crowded, 16, &[pair]);
    assert!(planner::is_valid_overlapping(&crowded, &plan, &[pair]));
    assert!(plan.peak <= 448);
}
