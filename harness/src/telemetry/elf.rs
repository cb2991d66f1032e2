//! Static memory figures of a device program, read from its ELF: what
//! `size` reports, by section flags rather than by names, so any linker
//! script's sections count. The one exception is by name: `.stack` and
//! `.heap`, which riscv-rt reserves as empty writable sections, are room
//! for the stack and a heap, not static data.

use object::elf::{SHF_ALLOC, SHF_WRITE, SHT_NOBITS};
use object::read::elf::{ElfFile32, FileHeader, SectionHeader};
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
}

/// Reads the section headers of a 32-bit little-endian ELF.
pub fn static_memory(path: &Path) -> Result<StaticMemory, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let elf = ElfFile32::<object::LittleEndian>::parse(&*bytes).map_err(|e| format!("failed to read {} as a 32-bit ELF: {e}", path.display()))?;
    let endian = elf.endian();
    let sections = elf.elf_header().sections(endian, &*bytes).map_err(|e| format!("failed to read the sections of {}: {e}", path.display()))?;
    let mut memory = StaticMemory { flash: 0, sram: 0 };
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
    }
    Ok(memory)
}
