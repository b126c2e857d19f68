//! The embedded eBPF object (built by `agent/build.rs` from `ebpf/xdp`) and
//! how it is loaded: maps pinned under the instance's pin dir are adopted
//! after checking that their layout is the one this build expects; missing
//! ones are created and pinned there. A pinned counter map of another
//! layout (an older build with fewer hooks or reasons) is replaced, counting
//! from zero: counters are not forwarding state, and refusing them would
//! stop an upgrade. Both programs are loaded.

use std::path::Path;

use aya::maps::{MapInfo, MapType};
use aya::programs::{SchedClassifier, Xdp};
use aya::{Ebpf, EbpfLoader};
use steer_common::{
    COUNTER_SLOTS, Config, Counter, MAP_CONFIG, MAP_COUNTERS, MAP_LPM4, MAP_LPM6, MAP_NH_SETS,
    MAX_NH_SETS, MAX_ROUTES, NextHopSet, PROGRAM_NAME, Route, TC_PROGRAM_NAME,
};

use super::XdpError;

/// The eBPF object file (both programs), as the build produced it.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer-xdp.o"));

struct Layout {
    name: &'static str,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

fn size<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

fn layouts() -> [Layout; 5] {
    [
        Layout {
            name: MAP_LPM4,
            map_type: MapType::LpmTrie,
            key_size: 4 + 4,
            value_size: size::<Route>(),
            max_entries: MAX_ROUTES,
        },
        Layout {
            name: MAP_LPM6,
            map_type: MapType::LpmTrie,
            key_size: 4 + 16,
            value_size: size::<Route>(),
            max_entries: MAX_ROUTES,
        },
        Layout {
            name: MAP_NH_SETS,
            map_type: MapType::Hash,
            key_size: size::<u32>(),
            value_size: size::<NextHopSet>(),
            max_entries: MAX_NH_SETS,
        },
        Layout {
            name: MAP_COUNTERS,
            map_type: MapType::PerCpuArray,
            key_size: size::<u32>(),
            value_size: size::<Counter>(),
            max_entries: COUNTER_SLOTS,
        },
        Layout {
            name: MAP_CONFIG,
            map_type: MapType::Array,
            key_size: size::<u32>(),
            value_size: size::<Config>(),
            max_entries: 1,
        },
    ]
}

/// Refuses pinned maps left by a build with another layout: adopting them
/// would make the program misread every entry.
fn check_pinned(pin_dir: &Path) -> Result<(), XdpError> {
    for want in layouts() {
        let path = pin_dir.join(want.name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).map_err(|cause| XdpError::Map {
            name: want.name,
            cause,
        })?;
        let found = (
            info.map_type().ok(),
            info.key_size(),
            info.value_size(),
            info.max_entries(),
        );
        let expected = (
            Some(want.map_type),
            want.key_size,
            want.value_size,
            want.max_entries,
        );
        if found != expected && want.name == MAP_COUNTERS {
            tracing::warn!(
                "pinned counters {} have layout {found:?}, this build counts in {expected:?}: \
                 replacing them (counters restart at zero)",
                path.display()
            );
            std::fs::remove_file(&path).map_err(|cause| XdpError::Io {
                path: path.clone(),
                cause,
            })?;
            continue;
        }
        if found != expected {
            return Err(XdpError::IncompatibleMap {
                path,
                found: format!("{found:?}"),
                expected: format!("{expected:?}"),
            });
        }
    }
    Ok(())
}

/// Loads the object with its maps adopted from (or pinned into) `pin_dir`,
/// and loads both programs into the kernel.
pub fn load(pin_dir: &Path) -> Result<Ebpf, XdpError> {
    check_pinned(pin_dir)?;
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .load(OBJECT)
        .map_err(Box::new)?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or(XdpError::MissingProgram(PROGRAM_NAME))?
        .try_into()?;
    prog.load()?;
    let tc: &mut SchedClassifier = ebpf
        .program_mut(TC_PROGRAM_NAME)
        .ok_or(XdpError::MissingProgram(TC_PROGRAM_NAME))?
        .try_into()?;
    tc.load()?;
    Ok(ebpf)
}
