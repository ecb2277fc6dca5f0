//! How much of an open index is in memory, and how much of that is mapped
//! with 2 MiB pages.
//!
//! A search is a few thousand random reads into the mapped segments, and
//! with 4 KiB pages nearly each one also misses the TLB. Readers ask for
//! 2 MiB pages (`madvise(MADV_HUGEPAGE)`), but whether they get them
//! depends on the page cache's history: pages cached earlier in small
//! pieces (for instance re-read piecemeal after memory pressure) stay
//! small. On the 10M benchmark index the same binary measured a p50 of
//! 0.379 ms with 544 of 985 MiB in 2 MiB pages and 0.242 ms with 988 MiB
//! (BENCHMARKS.md), so servers export these figures as metrics.
//!
//! Read from `/proc/self/smaps` (Linux); `None` elsewhere or when it
//! cannot be read.

/// Memory figures of the mapped segments of one reader, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Residency {
    /// Size of the mappings.
    pub mapped: u64,
    /// Resident now (touched by this process and still in memory).
    pub resident: u64,
    /// Resident and mapped with 2 MiB pages.
    pub huge: u64,
}

/// Sums the smaps figures of the mappings that lie inside any of `ranges`
/// (address, length), as this process sees them now.
pub(crate) fn of_ranges(ranges: &[(usize, usize)]) -> Option<Residency> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    Some(parse(&smaps, ranges))
}

fn parse(smaps: &str, ranges: &[(usize, usize)]) -> Residency {
    let mut r = Residency::default();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((start, end)) = vma_bounds(line) {
            inside = ranges
                .iter()
                .any(|&(a, len)| start >= a && end <= (a + len).next_multiple_of(4096));
            if inside {
                r.mapped += (end - start) as u64;
            }
            continue;
        }
        if !inside {
            continue;
        }
        let kib = |field: &str| {
            line.strip_prefix(field)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map(|k| k * 1024)
        };
        if let Some(b) = kib("Rss:") {
            r.resident += b;
        } else if let Some(b) = kib("FilePmdMapped:") {
            r.huge += b;
        }
    }
    r
}

/// `start-end` of a mapping's header line (`7f..-7f.. r--s ...`); `None`
/// for the field lines under it.
fn vma_bounds(line: &str) -> Option<(usize, usize)> {
    let first = line.split_whitespace().next()?;
    let (a, b) = first.split_once('-')?;
    let start = usize::from_str_radix(a, 16).ok()?;
    let end = usize::from_str_radix(b, 16).ok()?;
    (end >= start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0400000 r--s 00000000 fd:01 42 /idx/seg-0000000001.sgs
Size:               4096 kB
Rss:                4096 kB
FilePmdMapped:      2048 kB
7f0000000000-7f0000001000 r--p 00000000 fd:01 43 /usr/lib/libc.so.6
Size:                  4 kB
Rss:                   4 kB
FilePmdMapped:         0 kB
";

    #[test]
    fn sums_only_the_mappings_inside_the_ranges() {
        let got = parse(SMAPS, &[(0x55d0_c000_0000, 0x40_0000 - 100)]);
        assert_eq!(
            got,
            Residency {
                mapped: 4 << 20,
                resident: 4 << 20,
                huge: 2 << 20
            }
        );
        assert_eq!(parse(SMAPS, &[(0x1000, 0x1000)]), Residency::default());
    }
}
