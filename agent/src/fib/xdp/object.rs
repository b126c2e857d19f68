//! The embedded eBPF object (built by `agent/build.rs` from `ebpf/xdp`) and
//! how it is loaded: maps pinned under the instance's pin dir are adopted
//! after checking that their layout is the one this build expects; missing
//! ones are created and pinned there. A pinned counter, config or
//! flow-stats map of another layout (an older build with fewer hooks or
//! reasons, or a shorter config) is replaced, counting from zero: none is
//! forwarding state (the config is rewritten at every start), and refusing
//! them would stop an upgrade; the same goes for the return path's VM
//! prefixes and VM interfaces, rewritten at every start. All three programs
//! are loaded.

use std::path::Path;

use aya::maps::{MapInfo, MapType};
use aya::programs::{SchedClassifier, Xdp};
use aya::{Ebpf, EbpfLoader};
use steer_common::{
    COUNTER_SLOTS, Config, Counter, FLOW_EVENT_COUNT, FlowEntry, FlowKey, MAP_CONFIG, MAP_COUNTERS,
    MAP_FLOW_STATS, MAP_FLOWS, MAP_LPM4, MAP_LPM6, MAP_NH_SETS, MAP_VM_IFACES, MAP_VM4, MAP_VM6,
    MAX_FLOWS, MAX_NH_SETS, MAX_ROUTES, MAX_VM_IFACES, MAX_VM_PREFIXES, NextHopSet, PROGRAM_NAME,
    Route, TC_PROGRAM_NAME, UPLINK_PROGRAM_NAME,
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

/// Maps that are not forwarding state, or that the agent rewrites at every
/// start: one of another layout is replaced.
const REPLACEABLE: [&str; 6] = [
    MAP_COUNTERS,
    MAP_CONFIG,
    MAP_FLOW_STATS,
    MAP_VM4,
    MAP_VM6,
    MAP_VM_IFACES,
];

fn layouts() -> [Layout; 10] {
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
        Layout {
            name: MAP_FLOWS,
            map_type: MapType::LruHash,
            key_size: size::<FlowKey>(),
            value_size: size::<FlowEntry>(),
            max_entries: MAX_FLOWS,
        },
        Layout {
            name: MAP_FLOW_STATS,
            map_type: MapType::PerCpuArray,
            key_size: size::<u32>(),
            value_size: size::<u64>(),
            max_entries: FLOW_EVENT_COUNT as u32,
        },
        Layout {
            name: MAP_VM4,
            map_type: MapType::LpmTrie,
            key_size: 4 + 4,
            value_size: size::<u32>(),
            max_entries: MAX_VM_PREFIXES,
        },
        Layout {
            name: MAP_VM6,
            map_type: MapType::LpmTrie,
            key_size: 4 + 16,
            value_size: size::<u32>(),
            max_entries: MAX_VM_PREFIXES,
        },
        Layout {
            name: MAP_VM_IFACES,
            map_type: MapType::Hash,
            key_size: size::<u32>(),
            value_size: size::<u32>(),
            max_entries: MAX_VM_IFACES,
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
        if found != expected && REPLACEABLE.contains(&want.name) {
            tracing::warn!(
                "pinned map {} has layout {found:?}, this build uses {expected:?}: \
                 replacing it (it holds counters or settings, no forwarding state)",
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
/// and loads its three programs into the kernel.
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
    for name in [TC_PROGRAM_NAME, UPLINK_PROGRAM_NAME] {
        let tc: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or(XdpError::MissingProgram(name))?
            .try_into()?;
        tc.load()?;
    }
    Ok(ebpf)
}
