//! Static memory figures of a device program, read from its ELF: what
//! `size` reports, by section flags rather than by names, so any linker
//! script's sections count. The one exception is by name: `.stack` and
//! `.heap`, which riscv-rt reserves as empty writable sections, are room
//! for the stack and a heap, not static data.

use crate::input::target::Memory;
use object::elf::{PT_LOAD, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS};
use object::read::elf::{ElfFile32, FileHeader, ProgramHeader, SectionHeader};
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::Path;

/// Bytes of flash and of static RAM a firmware image takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticMemory {
    /// Loaded bytes: code, read-only data and the initial values of `.data`
    /// (`size`'s text + data).
    pub flash: u64,
    /// Writable allocated bytes: `.data`, `.bss` and uninitialized sections
    /// (`size`'s data + bss).
    pub sram: u64,
    /// Executable bytes: the code (`size -A`'s `.text`, without read-only
    /// data such as a built-in model), the figure code-size comparisons use.
    pub code: u64,
}

/// Reads the section headers of a 32-bit little-endian ELF.
pub fn static_memory(path: &Path) -> Result<StaticMemory, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let elf = ElfFile32::<object::LittleEndian>::parse(&*bytes)
        .map_err(|e| format!("failed to read {} as a 32-bit ELF: {e}", path.display()))?;
    let endian = elf.endian();
    let sections = elf
        .elf_header()
        .sections(endian, &*bytes)
        .map_err(|e| format!("failed to read the sections of {}: {e}", path.display()))?;
    let mut memory = StaticMemory {
        flash: 0,
        sram: 0,
        code: 0,
    };
    for section in sections.iter() {
        let flags = section.sh_flags(endian) as u64;
        if flags & SHF_ALLOC as u64 == 0 {
            continue;
        }
        let name = sections.section_name(endian, section).unwrap_or_default();
        if name == b".stack" || name == b".heap" {
            continue;
        }
        let size = section.sh_size(endian) as u64;
        if section.sh_type(endian) != SHT_NOBITS {
            memory.flash += size;
        }
        if flags & SHF_WRITE as u64 != 0 {
            memory.sram += size;
        }
        if flags & SHF_EXECINSTR as u64 != 0 {
            memory.code += size;
        }
    }
    Ok(memory)
}

/// What a firmware ELF says about where it goes and what it was built for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Address of the vector table (Cortex-M) or of the entry point (RISC-V).
    pub start: u64,
    /// The timer clock the firmware was configured for (`BENCH_CLOCK_HZ`; 0: it counts instructions).
    pub clock_hz: Option<u64>,
    /// Whether it has an RTT control block (`_SEGGER_RTT`).
    pub rtt: bool,
}

/// The addresses of the symbols `names` in an ELF, in order (`None` for one
/// it lacks).
pub fn symbol_addresses(path: &Path, names: &[&str]) -> Result<Vec<Option<u64>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let file = object::File::parse(&*bytes)
        .map_err(|e| format!("failed to read {} as an ELF: {e}", path.display()))?;
    Ok(names
        .iter()
        .map(|name| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .map(|s| s.address())
        })
        .collect())
}

/// Checks a firmware ELF against the target's memory map: the vector table
/// (or, without one, the entry point) at the origin of `FLASH`, every
/// allocated section and every loaded segment's load address inside one
/// region. Returns what the ELF records.
pub fn check_layout(path: &Path, regions: &[Memory]) -> Result<Layout, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let file = object::File::parse(&*bytes)
        .map_err(|e| format!("failed to read {} as an ELF: {e}", path.display()))?;
    let region_of = |start: u64, size: u64| {
        regions
            .iter()
            .find(|r| start >= r.origin && start + size <= r.origin + r.length)
    };
    let flash = regions
        .iter()
        .find(|r| r.name == "FLASH")
        .ok_or("the target has no FLASH region")?;
    for section in file.sections() {
        let name = section.name().unwrap_or("?");
        let flags = match section.flags() {
            object::SectionFlags::Elf { sh_flags } => sh_flags,
            _ => 0,
        };
        if flags & u64::from(SHF_ALLOC) == 0 || section.size() == 0 {
            continue;
        }
        if region_of(section.address(), section.size()).is_none() {
            return Err(format!(
                "section {name} ({:#x}, {} bytes) lies outside every memory region of the target",
                section.address(),
                section.size()
            ));
        }
    }
    let elf = ElfFile32::<object::LittleEndian>::parse(&*bytes)
        .map_err(|e| format!("failed to read {} as a 32-bit ELF: {e}", path.display()))?;
    let endian = elf.endian();
    for segment in elf.elf_program_headers() {
        let (paddr, size) = (
            u64::from(segment.p_paddr(endian)),
            u64::from(segment.p_filesz(endian)),
        );
        if segment.p_type(endian) == PT_LOAD && size > 0 && region_of(paddr, size).is_none() {
            return Err(format!("a loaded segment ({paddr:#x}, {size} bytes) would be flashed outside every memory region of the target"));
        }
    }
    let start = match file.section_by_name(".vector_table") {
        Some(vectors) => vectors.address(),
        None => file.entry(),
    };
    if start != flash.origin {
        return Err(format!("the firmware starts at {start:#x}, not at the origin of FLASH ({:#x}): the board would not boot it", flash.origin));
    }
    let symbol = |name: &str| file.symbols().find(|s| s.name() == Ok(name));
    let clock_hz = symbol("BENCH_CLOCK_HZ").and_then(|s| {
        let section = file.section_by_index(s.section_index()?).ok()?;
        let data = section.data().ok()?;
        let at = usize::try_from(s.address().checked_sub(section.address())?).ok()?;
        Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
    });
    Ok(Layout {
        start,
        clock_hz,
        rtt: symbol("_SEGGER_RTT").is_some(),
    })
}
