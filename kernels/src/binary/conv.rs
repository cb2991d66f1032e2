//! Binary convolution.
//!
//! Each output pixel's receptive field is laid out once as one stream of
//! bits, tap after tap, `C` bits per tap (padding as clear bits, i.e. +1),
//! and every filter, laid out the same way, runs over it in one
//! [`popcount::xor_popcount`]. When `C` is not a multiple of 32 the taps are
//! packed densely (a 3x3 window over 16 channels is 5 words, not 9) and the
//! filters are repacked once per call into a stack buffer. Windows too large
//! for the stack buffers go tap by tap.

use super::{
    padded_popcount, popcount, tail_mask, words, xor_popcount, BinaryOutput, BinaryPadding,
    OUTPUT_BLOCK, WIDE_BLOCK,
};
use crate::error::{expect_len, KernelError};
use crate::geometry::ConvGeometry;

/// Words of one receptive field the stack holds: a 3x3 window over 256
/// channels.
const FIELD_WORDS: usize = 72;
/// Words of repacked filters the stack holds, for channel counts that are
/// not a multiple of 32 (16 filters of 3x3 over 16 channels take 80); more
/// filters are repacked block by block.
const FILTER_WORDS: usize = 128;

/// Checks a binary convolution's input and filter lengths, in words.
pub fn check_conv2d(g: &ConvGeometry, input: usize, filter: usize) -> Result<(), KernelError> {
    g.check()?;
    let wpc = words(g.input.c as usize);
    expect_len(
        "packed input",
        input,
        g.input.pixels().unwrap_or(usize::MAX).saturating_mul(wpc),
    )?;
    expect_len(
        "packed filter",
        filter,
        g.output.c as usize * g.window.taps() * wpc,
    )
}

/// Binary convolution. Input `[N, H, W, words(C)]`, filter `[O, KH, KW, words(C)]`.
pub fn conv2d(
    g: &ConvGeometry,
    padding: BinaryPadding,
    input: &[u32],
    filter: &[u32],
    mut output: BinaryOutput,
) -> Result<(), KernelError> {
    check_conv2d(g, input.len(), filter.len())?;
    let (ic, oc, taps) = (g.input.c as usize, g.output.c as usize, g.window.taps());
    output.check(g.output.pixels().unwrap_or(usize::MAX), oc)?;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if oc > 0
        && g.output.pixels() != Some(0)
        && super::x86::conv2d(g, padding, input, filter, &mut output)
    {
        return Ok(());
    }
    let field_words = (taps * ic).div_ceil(32);
    if field_words > FIELD_WORDS || (ic % 32 != 0 && field_words > FILTER_WORDS) {
        by_taps(g, padding, input, filter, &mut output);
    } else if ic % 32 == 0 {
        // Whole words per tap: a filter is its own stream.
        counted(g, padding, input, filter, filter, 0, &mut output);
    } else {
        // Filters repacked by blocks of a power of two channels (so a block
        // never straddles a word of packed output), each block over every
        // pixel: the receptive fields are laid out once per block.
        let block = (FILTER_WORDS / field_words).min(32);
        let block = 1 << block.ilog2();
        let wpc = words(ic);
        let mut streams = [0u32; FILTER_WORDS];
        for (index, filters) in filter.chunks(block * taps * wpc).enumerate() {
            let streams = &mut streams[..filters.len() / (taps * wpc) * field_words];
            for (stream, f) in streams
                .chunks_exact_mut(field_words)
                .zip(filters.chunks_exact(taps * wpc))
            {
                let mut bits = BitStream::new(stream);
                for tap in f.chunks_exact(wpc) {
                    bits.push(tap, ic);
                }
            }
            counted(
                g,
                padding,
                input,
                filter,
                streams,
                index * block,
                &mut output,
            );
        }
    }
    Ok(())
}

/// Writes bit fields one after another into zeroed words, least
/// significant bit first.
struct BitStream<'a> {
    words: &'a mut [u32],
    at: usize,
}

impl<'a> BitStream<'a> {
    fn new(words: &'a mut [u32]) -> Self {
        words.fill(0);
        Self { words, at: 0 }
    }

    /// Appends the first `n` bits of the packed words `signs`.
    #[inline(always)]
    fn push(&mut self, signs: &[u32], n: usize) {
        let mut left = n;
        for &word in signs {
            let bits = left.min(32);
            self.push_word(
                if bits == 32 {
                    word
                } else {
                    word & ((1 << bits) - 1)
                },
                bits,
            );
            left -= bits;
        }
    }

    /// Appends the `bits` low bits of `value`, whose other bits are clear.
    #[inline(always)]
    fn push_word(&mut self, value: u32, bits: usize) {
        let (i, shift) = (self.at / 32, self.at % 32);
        self.words[i] |= value << shift;
        if shift + bits > 32 {
            self.words[i + 1] |= value >> (32 - shift);
        }
        self.at += bits;
    }

    /// Appends `n` clear bits.
    fn skip(&mut self, n: usize) {
        self.at += n;
    }
}

/// Bytes of stack for a block of channels' int8 outputs by popcount
/// (`K + 1` per channel): 4 KiB where the stack has room (the DSP cores, a
/// firmware with a 12 KiB stack, the host: 63 channels of a 64-bit field),
/// 1 KiB on the 16 KiB boards. Each block is one more pass over the
/// pixels.
const LOOKUP_BYTES: usize = if cfg!(any(arm_dsp, feature = "std", large_stack)) {
    4096
} else {
    1024
};

/// Every output pixel's receptive field as one stream, every row of
/// `streams` (output channels `first..`) over it. `filter` (the layout of
/// [`conv2d`]) gives the padded taps' counts to take off under
/// [`BinaryPadding::Zero`]. With `by_count` (the rows' int8 outputs by
/// popcount, `K + 1` each), a window wholly inside the input is counted and
/// looked up in one pass.
#[inline(never)]
fn by_streams<const BLOCK: usize>(
    g: &ConvGeometry,
    padding: BinaryPadding,
    input: &[u32],
    filter: &[u32],
    (streams, first): (&[u32], usize),
    by_count: Option<&[i8]>,
    output: &mut BinaryOutput,
) {
    let (ic, oc, taps) = (g.input.c as usize, g.output.c as usize, g.window.taps());
    let (wpc, mask) = (words(ic), tail_mask(ic));
    let field_words = (taps * ic).div_ceil(32);
    let mut field = [0u32; FIELD_WORDS];
    let field = &mut field[..field_words];
    let mut pops = [0u32; BLOCK];
    let counter = popcount::RowCounter::new(streams, field_words);
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let mut inside = 0;
        if ic % 32 == 0 {
            field.fill(0);
            g.for_each_tap_run(b, oy, ox, |tap, at, n| {
                field[tap * wpc..][..n * wpc].copy_from_slice(&input[at * wpc..][..n * wpc]);
                inside += n;
            });
        } else {
            let mut bits = BitStream::new(field);
            g.for_each_window_tap(b, oy, ox, |_, at| match at {
                Some(at) => {
                    if wpc == 1 {
                        bits.push_word(input[at] & mask, ic);
                    } else {
                        bits.push(&input[at * wpc..][..wpc], ic);
                    }
                    inside += 1;
                }
                None => bits.skip(ic),
            });
        }
        let (k, outside) = match padding {
            BinaryPadding::One => (taps * ic, false),
            BinaryPadding::Zero => (inside * ic, inside < taps),
        };
        let rows = streams.len() / field_words;
        if !outside && counter.count_emit(field, rows, k as i32, (pixel, oc, first), output) {
            return;
        }
        if let (Some(table), false) = (by_count, outside) {
            if let Some(out) = output.int8_at((pixel, oc, first), rows) {
                return popcount::count_lookup(field, streams, table, out);
            }
        }
        for (index, streams) in streams.chunks(field_words * BLOCK).enumerate() {
            let first = first + index * BLOCK;
            let pops = &mut pops[..streams.len() / field_words];
            counter.count(field, index * BLOCK, pops);
            if outside {
                // The clear bits of taps outside the input counted the
                // filter's own bits there; zero padding leaves those taps out.
                for (i, pop) in pops.iter_mut().enumerate() {
                    let f = &filter[(first + i) * taps * wpc..][..taps * wpc];
                    g.for_each_window_tap(b, oy, ox, |tap, at| {
                        if at.is_none() {
                            *pop -= padded_popcount(&f[tap * wpc..][..wpc], mask);
                        }
                    });
                }
            }
            output.emit_block(pixel, oc, first, k as i32, pops);
        }
    });
}

/// [`by_streams`] emitting a word of packed bits at a time, int8 or float
/// outputs [`WIDE_BLOCK`] channels at a time.
fn counted(
    g: &ConvGeometry,
    padding: BinaryPadding,
    input: &[u32],
    filter: &[u32],
    streams: &[u32],
    first: usize,
    output: &mut BinaryOutput,
) {
    let rows = (streams, first);
    match output {
        BinaryOutput::Bits { .. } => {
            by_streams::<OUTPUT_BLOCK>(g, padding, input, filter, rows, None, output)
        }
        BinaryOutput::Int8 { .. } if lookup_pays(g) => {
            by_lookup(g, padding, input, filter, rows, output)
        }
        _ => by_streams::<WIDE_BLOCK>(g, padding, input, filter, rows, None, output),
    }
}

/// Whether a layer's int8 outputs are better looked up by popcount than
/// computed: where there is no vector transform (the x86 levels beyond the
/// portable one have one) and a table (`K + 1` entries per channel, each one
/// output's arithmetic) costs less to fill than the outputs it serves.
fn lookup_pays(g: &ConvGeometry) -> bool {
    let k = g.window.taps() * g.input.c as usize;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::transforms_in_vectors() {
        return false;
    }
    k < LOOKUP_BYTES && g.output.pixels().is_some_and(|pixels| pixels > k + 1)
}

/// [`by_streams`] a block of channels at a time, each block's int8 outputs
/// by popcount worked out first into a table on the stack (the float
/// multiply-add, rounding and clamping of each output cost about ten times
/// a lookup on a core without vector units). The same bytes as the
/// arithmetic: the table is that arithmetic, done once per count.
fn by_lookup(
    g: &ConvGeometry,
    padding: BinaryPadding,
    input: &[u32],
    filter: &[u32],
    (streams, first): (&[u32], usize),
    output: &mut BinaryOutput,
) {
    let BinaryOutput::Int8 {
        multiplier,
        bias,
        zero_point,
        clamp,
        ..
    } = output
    else {
        return;
    };
    let (multiplier, bias, zero_point, clamp) = (*multiplier, *bias, *zero_point, *clamp);
    let k = g.window.taps() * g.input.c as usize;
    let field_words = k.div_ceil(32);
    // As few blocks as the buffer allows, of even size.
    let rows = streams.len() / field_words;
    let blocks = rows.div_ceil(LOOKUP_BYTES / (k + 1));
    let per_block = rows.div_ceil(blocks.max(1));
    let mut table = [0i8; LOOKUP_BYTES];
    for (index, rows) in streams.chunks(per_block * field_words).enumerate() {
        let start = first + index * per_block;
        let n = rows.len() / field_words;
        let table = &mut table[..n * (k + 1)];
        let transform = (&multiplier[start..][..n], &bias[start..][..n]);
        super::int8_by_count(transform, zero_point, clamp, k, table);
        by_streams::<WIDE_BLOCK>(
            g,
            padding,
            input,
            filter,
            (rows, start),
            Some(table),
            output,
        );
    }
}

/// Tap by tap, for windows larger than the stack buffers.
#[inline(never)]
fn by_taps(
    g: &ConvGeometry,
    padding: BinaryPadding,
    input: &[u32],
    filter: &[u32],
    output: &mut BinaryOutput,
) {
    let (ic, taps) = (g.input.c as usize, g.window.taps());
    let (wpc, mask) = (words(ic), tail_mask(ic));
    let mut pops = [0u32; OUTPUT_BLOCK];
    g.for_each_output_pixel(|pixel, b, oy, ox| {
        let mut counted = 0;
        g.for_each_window_tap(b, oy, ox, |_, at| {
            counted += usize::from(at.is_some() || padding == BinaryPadding::One)
        });
        for (block, filters) in filter.chunks(taps * wpc * OUTPUT_BLOCK).enumerate() {
            let pops = &mut pops[..filters.len() / (taps * wpc)];
            for (pop, f) in pops.iter_mut().zip(filters.chunks_exact(taps * wpc)) {
                *pop = 0;
                g.for_each_window_tap(b, oy, ox, |tap, at| {
                    let fw = &f[tap * wpc..][..wpc];
                    match (at, padding) {
                        (Some(at), _) => *pop += xor_popcount(&input[at * wpc..][..wpc], fw, mask),
                        (None, BinaryPadding::One) => *pop += padded_popcount(fw, mask),
                        (None, BinaryPadding::Zero) => {}
                    }
                });
            }
            output.emit_block(
                pixel,
                g.output.c as usize,
                block * OUTPUT_BLOCK,
                (counted * ic) as i32,
                pops,
            );
        }
    });
}
