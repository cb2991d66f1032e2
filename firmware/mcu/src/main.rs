//! Microcontroller firmware: the model the harness prepared is built in
//! (`BENCH_MODEL_BLOB`), the memory map comes from the target file
//! (`BENCH_MEMORY`), and the board's UART, timer and exit come from the
//! board module a cargo feature selects. Everything else is the shared
//! firmware core, the same code the host device program runs.
#![no_std]
#![no_main]

mod board;

use device::{Buffers, Identity};
use kernels::model::Model;

/// 16-byte alignment for the blob and the arena, as the executor asks.
#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

include!(concat!(env!("OUT_DIR"), "/model.rs"));

/// Frame buffer size for a message of `bytes` payload bytes, with 64 bytes of room for its header.
const fn framed(bytes: usize) -> usize {
    protocol::frame_len(bytes) + 64
}

/// The largest request: a piece of input (identify, thresholds and runs are smaller).
const RX_BYTES: usize = if INPUT_BYTES < protocol::MAX_INPUT_CHUNK {
    INPUT_BYTES
} else {
    protocol::MAX_INPUT_CHUNK
};

/// The buffers, in `.bss`, sized for this model at build time.
struct Memory {
    arena: Aligned<[u8; ARENA_BYTES]>,
    input: [u8; INPUT_BYTES],
    rx: [u8; framed(RX_BYTES)],
    scratch: [u8; framed(OUTPUT_BYTES)],
    frame: [u8; framed(framed(OUTPUT_BYTES))],
}

static mut MEMORY: Memory = Memory {
    arena: Aligned([0; ARENA_BYTES]),
    input: [0; INPUT_BYTES],
    rx: [0; framed(RX_BYTES)],
    scratch: [0; framed(OUTPUT_BYTES)],
    frame: [0; framed(framed(OUTPUT_BYTES))],
};

/// Serves the built-in model; called once by the board's reset handler.
fn run(mut port: board::Port, mut clock: board::Clock, mut marker: board::Marker) -> ! {
    board::paint_stack();
    if cfg!(feature = "fault-panic") {
        panic!("injected fault (feature fault-panic)");
    }
    if cfg!(feature = "fault-hang") {
        loop {
            core::hint::spin_loop();
        }
    }
    // SAFETY: `run` is entered once, before any other code touches MEMORY.
    let memory = unsafe { &mut *core::ptr::addr_of_mut!(MEMORY) };
    let Memory {
        arena,
        input,
        rx,
        scratch,
        frame,
    } = memory;
    match Model::parse(&BLOB.0) {
        Ok(model) if cfg!(feature = "eembc") => {
            let quant = OUTPUT_QUANT;
            device::eembc::serve(&model, &mut arena.0, input, &mut port, &mut clock, quant);
            board::exit(0)
        }
        Ok(model) => {
            let id = Identity {
                board: board::NAME,
                arena_capacity: ARENA_BYTES as u32,
            };
            let buffers = Buffers {
                arena: &mut arena.0,
                input,
                rx,
                scratch,
                frame,
            };
            if device::serve(
                &model,
                id,
                buffers,
                &mut port,
                (&mut clock, &mut marker),
                board::stack_peak,
            ) == device::Stop::Requested
            {
                board::exit(0)
            }
        }
        Err(e) if cfg!(feature = "eembc") => device::eembc::refuse(&mut port, &e),
        Err(e) => device::refuse(&mut port, &e, scratch, frame),
    }
    board::exit(1)
}
