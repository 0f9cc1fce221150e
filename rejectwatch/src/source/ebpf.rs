//! The live source: loads the eBPF programs, attaches them with bpf_links
//! (XDP on ingress, tcx on egress) so nothing stays attached once the
//! process is gone, even after SIGKILL, and reads the ring buffer and the
//! per-CPU counters.

use std::{ffi::CString, io, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use rejectwatch_common::{PortSet, counter, enforce};

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rejectwatch"));

pub const XDP_PROGRAM: &str = "rejectwatch_xdp";
pub const TC_PROGRAM: &str = "rejectwatch_tc";
pub const FLOOR_XDP_PROGRAM: &str = "floor_xdp";
pub const FLOOR_TC_PROGRAM: &str = "floor_tc";
pub const LOOK_XDP_PROGRAM: &str = "look_xdp";
pub const LOOK_TC_PROGRAM: &str = "look_tc";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Native (driver) XDP where the driver has it, generic otherwise.
    Auto,
    Native,
    Generic,
}

#[derive(Clone, Debug)]
pub struct KernelConfig {
    pub ifaces: Vec<String>,
    pub ports: Vec<u16>,
    pub snaplen: u32,
    pub response_snaplen: u32,
    pub ringbuf_bytes: u32,
    pub wakeup_bytes: u64,
    pub mode: AttachMode,
    /// Drop listed sources in XDP, with maps of this many entries each.
    pub enforce: Option<u32>,
}

/// Why the kernel side could not be set up; each is one clear line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no such network interface: {0} (see `ip link`)")]
    NoInterface(String),
    #[error("not permitted to load eBPF programs: run as root or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON ({0})")]
    NotPermitted(String),
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux missing) and refused the programs: {0}")]
    NoBtf(String),
    #[error("cannot attach XDP to {iface}: {reason} (try --xdp-mode generic)")]
    Xdp { iface: String, reason: String },
    #[error("cannot attach the egress classifier to {iface}: {reason} (tcx needs Linux ≥ 6.6, or clsact)")]
    Tc { iface: String, reason: String },
    #[error("eBPF setup failed: {0}")]
    Other(String),
}

/// The whole error chain on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn permission_problem(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM))
        {
            return true;
        }
        cur = c.source();
    }
    (unsafe { libc::geteuid() }) != 0
}

fn classify(e: &(dyn std::error::Error + 'static)) -> LoadError {
    let line = chain(e);
    if permission_problem(e) {
        // The verifier's log says nothing about privileges: keep one line.
        let short = line.split(". Verifier output").next().unwrap_or(&line);
        LoadError::NotPermitted(short.lines().next().unwrap_or(short).to_string())
    } else if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        LoadError::NoBtf(line)
    } else {
        LoadError::Other(line)
    }
}

fn check_ifaces(ifaces: &[String]) -> Result<(), LoadError> {
    for iface in ifaces {
        let c = CString::new(iface.as_str()).map_err(|_| LoadError::NoInterface(iface.clone()))?;
        if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
            return Err(LoadError::NoInterface(iface.clone()));
        }
    }
    Ok(())
}

/// Loads the XDP program `xdp` and the classifier `tc` of `ebpf` and
/// attaches them to every interface (XDP on ingress, tcx on egress).
fn attach_pair(ebpf: &mut Ebpf, xdp: &str, tc: &str, ifaces: &[String], mode: AttachMode) -> Result<(), LoadError> {
    let prog: &mut Xdp = ebpf
        .program_mut(xdp)
        .ok_or_else(|| LoadError::Other(format!("program {xdp} missing")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| LoadError::Other(chain(&e)))?;
    prog.load().map_err(|e| classify(&e))?;
    let mode = match mode {
        AttachMode::Auto => XdpMode::Default,
        AttachMode::Native => XdpMode::Driver,
        AttachMode::Generic => XdpMode::Skb,
    };
    for iface in ifaces {
        prog.attach(iface, mode).map_err(|e| LoadError::Xdp { iface: iface.clone(), reason: chain(&e) })?;
    }
    let prog: &mut SchedClassifier = ebpf
        .program_mut(tc)
        .ok_or_else(|| LoadError::Other(format!("program {tc} missing")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| LoadError::Other(chain(&e)))?;
    prog.load().map_err(|e| classify(&e))?;
    for iface in ifaces {
        prog.attach(iface, TcAttachType::Egress)
            .map_err(|e| LoadError::Tc { iface: iface.clone(), reason: chain(&e) })?;
    }
    Ok(())
}

/// A benchmark floor: the no-op programs ([`FLOOR_XDP_PROGRAM`],
/// [`FLOOR_TC_PROGRAM`]) or the look-only ones ([`LOOK_XDP_PROGRAM`],
/// [`LOOK_TC_PROGRAM`]), attached where rejectwatch's are. Detached on drop.
pub struct Floor {
    _ebpf: Ebpf,
}

impl Floor {
    pub fn attach(ifaces: &[String], mode: AttachMode, (xdp, tc): (&str, &str)) -> Result<Self, LoadError> {
        check_ifaces(ifaces)?;
        let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT).map_err(|e| classify(&e))?;
        attach_pair(&mut ebpf, xdp, tc, ifaces, mode)?;
        Ok(Self { _ebpf: ebpf })
    }
}

pub struct Kernel {
    ebpf: Ebpf,
}

impl Kernel {
    /// Loads, configures and attaches; returns once packets are observed.
    pub fn attach(cfg: &KernelConfig) -> Result<Self, LoadError> {
        check_ifaces(&cfg.ifaces)?;
        // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
        let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };

        let enforce = u32::from(cfg.enforce.is_some());
        let mut loader = EbpfLoader::new();
        loader
            .override_global("SNAPLEN", &cfg.snaplen, true)
            .override_global("RESPONSE_SNAPLEN", &cfg.response_snaplen, true)
            .override_global("WAKEUP_BYTES", &cfg.wakeup_bytes, true)
            .override_global("ENFORCE", &enforce, true)
            .map_max_entries("EVENTS", cfg.ringbuf_bytes);
        if let Some(n) = cfg.enforce {
            for name in enforce::MAPS.iter().flatten() {
                loader.map_max_entries(name, n);
            }
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(|e| classify(&e))?;

        let mut ports = PortSet::empty();
        for &p in &cfg.ports {
            ports.insert(p);
        }
        let mut port_map: Array<_, PortSet> =
            Array::try_from(ebpf.map_mut("PORTS").ok_or_else(|| LoadError::Other("PORTS map missing".into()))?)
                .map_err(|e| LoadError::Other(chain(&e)))?;
        port_map.set(0, ports, 0).map_err(|e| classify(&e))?;

        attach_pair(&mut ebpf, XDP_PROGRAM, TC_PROGRAM, &cfg.ifaces, cfg.mode)?;
        Ok(Self { ebpf })
    }

    /// The ring buffer, taken out of the object for the reader task.
    pub fn take_ring(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self.ebpf.take_map("EVENTS").ok_or_else(|| anyhow::anyhow!("EVENTS map missing"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// The per-CPU counters maps, taken out for the stats reader.
    pub fn take_counters(&mut self) -> anyhow::Result<Counters> {
        let map = self.ebpf.take_map("COUNTERS").ok_or_else(|| anyhow::anyhow!("COUNTERS map missing"))?;
        let drops = self.ebpf.take_map("DROPS").ok_or_else(|| anyhow::anyhow!("DROPS map missing"))?;
        Ok(Counters { map: PerCpuArray::try_from(map)?, drops: PerCpuArray::try_from(drops)? })
    }

    /// The enforcement maps, taken out for the blocklist to keep.
    pub fn take_enforcer(&mut self) -> anyhow::Result<crate::enforce::XdpEnforcer> {
        crate::enforce::XdpEnforcer::from_ebpf(&mut self.ebpf)
    }
}

/// Cumulative run time (ns) and run count of every loaded BPF program named
/// `name`, as the kernel accounts them while BPF stats are enabled
/// (`aya::sys::enable_stats`, or sysctl kernel.bpf_stats_enabled).
pub fn program_run_stats(name: &str) -> (u64, u64) {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some(name))
        .fold((0, 0), |(ns, runs), p| (ns + p.run_time().as_nanos() as u64, runs + p.run_count()))
}

/// Totals of the kernel's per-CPU counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounts {
    pub packets: u64,
    pub heads: u64,
    pub continuations: u64,
    pub statuses: u64,
    pub ringbuf_drops: u64,
    pub load_failures: u64,
    pub truncated: u64,
    pub wakeups: u64,
    pub split_starts: u64,
    pub split_statuses: u64,
    pub not_http: u64,
    /// Packets and bytes dropped by enforcement: IPv4, then IPv6.
    pub dropped: [(u64, u64); 2],
}

pub struct Counters {
    map: PerCpuArray<MapData, u64>,
    drops: PerCpuArray<MapData, u64>,
}

impl Counters {
    pub fn read(&self) -> anyhow::Result<KernelCounts> {
        let mut v = [0u64; counter::COUNT as usize];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = self.map.get(&(i as u32), 0)?.iter().sum();
        }
        let mut d = [0u64; enforce::DROP_COUNTERS as usize];
        for (i, slot) in d.iter_mut().enumerate() {
            *slot = self.drops.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(KernelCounts {
            packets: v[counter::PACKETS as usize],
            heads: v[counter::HEADS as usize],
            continuations: v[counter::CONTINUATIONS as usize],
            statuses: v[counter::STATUSES as usize],
            ringbuf_drops: v[counter::RINGBUF_DROPS as usize],
            load_failures: v[counter::LOAD_FAILURES as usize],
            truncated: v[counter::TRUNCATED as usize],
            wakeups: v[counter::WAKEUPS as usize],
            split_starts: v[counter::SPLIT_STARTS as usize],
            split_statuses: v[counter::SPLIT_STATUSES as usize],
            not_http: v[counter::NOT_HTTP as usize],
            dropped: [
                (d[enforce::DROPPED_V4_PACKETS as usize], d[enforce::DROPPED_V4_BYTES as usize]),
                (d[enforce::DROPPED_V6_PACKETS as usize], d[enforce::DROPPED_V6_BYTES as usize]),
            ],
        })
    }
}

/// The programs loaded and configured but attached nowhere, for running
/// them on packets a test hands them (`BPF_PROG_TEST_RUN`): what they
/// return and what they ship, without an interface or traffic.
pub struct Loaded {
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
}

/// `union bpf_attr`'s `test` member (linux/bpf.h), as far as it is used.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

impl Loaded {
    /// Loads both programs with `cfg`'s capture settings and ports.
    pub fn load(cfg: &KernelConfig) -> anyhow::Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .override_global("SNAPLEN", &cfg.snaplen, true)
            .override_global("RESPONSE_SNAPLEN", &cfg.response_snaplen, true)
            .override_global("WAKEUP_BYTES", &cfg.wakeup_bytes, true)
            .load(EBPF_OBJECT)
            .map_err(|e| classify(&e))?;
        let mut ports = PortSet::empty();
        for &p in &cfg.ports {
            ports.insert(p);
        }
        let mut port_map: Array<_, PortSet> =
            Array::try_from(ebpf.map_mut("PORTS").ok_or_else(|| anyhow::anyhow!("PORTS map missing"))?)?;
        port_map.set(0, ports, 0)?;
        let xdp: &mut Xdp =
            ebpf.program_mut(XDP_PROGRAM).ok_or_else(|| anyhow::anyhow!("no XDP program"))?.try_into()?;
        xdp.load()?;
        let tc: &mut SchedClassifier =
            ebpf.program_mut(TC_PROGRAM).ok_or_else(|| anyhow::anyhow!("no TC program"))?.try_into()?;
        tc.load()?;
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").ok_or_else(|| anyhow::anyhow!("EVENTS map missing"))?)?;
        Ok(Self { ebpf, ring })
    }

    fn run(&self, fd: std::os::fd::BorrowedFd<'_>, packet: &[u8]) -> io::Result<u32> {
        use std::os::fd::AsRawFd as _;
        // Room for what the program may write back (it writes nothing).
        let mut out = vec![0u8; packet.len() + 256];
        let mut attr = TestRunAttr {
            prog_fd: fd.as_raw_fd() as u32,
            data_size_in: packet.len() as u32,
            data_size_out: out.len() as u32,
            data_in: packet.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: the attribute points at buffers that outlive the call,
        // with their true sizes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &mut attr as *mut TestRunAttr,
                std::mem::size_of::<TestRunAttr>(),
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(attr.retval) }
    }

    /// Runs the XDP program on `packet` (an Ethernet frame); its verdict.
    pub fn run_xdp(&self, packet: &[u8]) -> anyhow::Result<u32> {
        use std::os::fd::AsFd as _;
        let p: &Xdp = self.ebpf.program(XDP_PROGRAM).ok_or_else(|| anyhow::anyhow!("no XDP program"))?.try_into()?;
        Ok(self.run(p.fd()?.as_fd(), packet)?)
    }

    /// Runs the egress classifier on `packet`; its verdict.
    pub fn run_tc(&self, packet: &[u8]) -> anyhow::Result<u32> {
        use std::os::fd::AsFd as _;
        let p: &SchedClassifier =
            self.ebpf.program(TC_PROGRAM).ok_or_else(|| anyhow::anyhow!("no TC program"))?.try_into()?;
        Ok(self.run(p.fd()?.as_fd(), packet)?)
    }

    /// The records shipped since the last call, raw.
    pub fn records(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = self.ring.next() {
            out.push(r.to_vec());
        }
        out
    }
}
