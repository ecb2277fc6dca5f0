//! The entropy layer of the baseline decoder: Huffman tables, the bit
//! reader (byte stuffing, markers, restart intervals) and the decoding of
//! one block's coefficients. Everything here runs once per symbol, so it is
//! written for registers and table lookups; see the measurements in the
//! comments.

use super::baseline::{Coefs, Declined, Result};

/// Codes of up to this many bits decode with one table lookup (AC codes
/// together with their magnitude bits when both fit). 10 bits decoded
/// 5-7% faster than 9 on photos saved at quality 90 (many AC symbols of
/// those need 8-10 bits with their magnitude); 11 was no faster than 10.
pub(super) const FAST_BITS: u32 = 10;

/// The run field of a `fast_ac` entry for end-of-block.
const FAST_EOB: usize = 0xFF;

/// Peek width of the `skip` table: how many bits of symbols whose values
/// nobody reads are parsed with one lookup.
const SKIP_BITS: u32 = 12;

/// The end-of-block flag of a `skip` entry.
const SKIP_EOB: u16 = 1 << 11;

pub(super) struct Huffman {
    /// `(length << 8) | symbol` for codes of at most FAST_BITS; 0 if longer.
    fast: [u16; 1 << FAST_BITS],
    /// AC only: `(value << 16) | (run << 8) | total_bits` when the code and
    /// its magnitude bits both fit in FAST_BITS, run [`FAST_EOB`] for
    /// end-of-block; 0 otherwise.
    fast_ac: [i32; 1 << FAST_BITS],
    /// AC only, built by [`Huffman::prepare_skip`] once a scan is to be
    /// decoded (most headers parsed under `--fast` belong to images too
    /// small for it): the whole symbols (codes with their magnitude bits)
    /// at the start of each SKIP_BITS-bit peek, for coefficients nobody
    /// reads: `bits | (positions << 4) | SKIP_EOB if they end with
    /// end-of-block`, where `positions` counts the coefficients they cover
    /// (run + 1 each, 16 for a zero run). 0 when not even one symbol fits.
    skip: Vec<u16>,
    /// Codes of each length 1..=16, kept for `prepare_skip`.
    counts: [u8; 16],
    /// Largest code of each length (index 1..=16), -1 when none.
    max_code: [i32; 17],
    /// Symbol index of a code of each length = code + offset.
    offset: [i32; 17],
    symbols: [u8; 256],
    count: usize,
}

impl Huffman {
    pub(super) fn new(counts: &[u8; 16], symbols: &[u8], is_ac: bool) -> Result<Huffman> {
        let mut t = Huffman {
            fast: [0; 1 << FAST_BITS],
            fast_ac: [0; 1 << FAST_BITS],
            skip: Vec::new(),
            counts: *counts,
            max_code: [-1; 17],
            offset: [0; 17],
            symbols: [0; 256],
            count: symbols.len(),
        };
        if symbols.len() > 256 {
            return Err(Declined::Corrupt("over 256 Huffman symbols"));
        }
        t.symbols[..symbols.len()].copy_from_slice(symbols);
        let mut code = 0u32;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = usize::from(counts[len as usize - 1]);
            t.offset[len as usize] = k as i32 - code as i32;
            for _ in 0..n {
                if code >= (1 << len) {
                    return Err(Declined::Corrupt("over-subscribed Huffman table"));
                }
                if len <= FAST_BITS {
                    let shift = FAST_BITS - len;
                    let entry = ((len as u16) << 8) | u16::from(symbols[k]);
                    for e in (code << shift)..((code + 1) << shift) {
                        t.fast[e as usize] = entry;
                    }
                }
                k += 1;
                code += 1;
            }
            if n > 0 {
                t.max_code[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        if is_ac {
            for (peek, &e) in t.fast.iter().enumerate() {
                if e == 0 {
                    continue;
                }
                let (len, sym) = (u32::from(e >> 8), e & 0xFF);
                let (run, size) = (u32::from(sym >> 4), u32::from(sym & 15));
                if sym == 0 {
                    t.fast_ac[peek] = ((FAST_EOB as i32) << 8) | len as i32;
                    continue;
                }
                if size == 0 || len + size > FAST_BITS {
                    continue;
                }
                let bits = (peek as u32 >> (FAST_BITS - len - size)) & ((1 << size) - 1);
                let value = extend(bits, size);
                t.fast_ac[peek] = (value << 16) | ((run as i32) << 8) | (len + size) as i32;
            }
        }
        Ok(t)
    }

    /// Builds the `skip` table of an AC table (once).
    pub(super) fn prepare_skip(&mut self) {
        if self.skip.is_empty() {
            self.skip = skip_table(&self.counts, &self.symbols[..self.count]);
        }
    }

    #[inline]
    fn decode(&self, bits: &mut Hot) -> Result<u8> {
        let e = self.fast[bits.peek(FAST_BITS) as usize];
        if e != 0 {
            bits.consume(u32::from(e >> 8));
            return Ok(e as u8);
        }
        let p16 = bits.peek(16) as i32;
        for len in FAST_BITS + 1..=16 {
            let code = p16 >> (16 - len);
            if code <= self.max_code[len as usize] {
                bits.consume(len);
                let i = (code + self.offset[len as usize]) as usize;
                return if i < self.count {
                    Ok(self.symbols[i])
                } else {
                    Err(Declined::Corrupt("bad Huffman code"))
                };
            }
        }
        Err(Declined::Corrupt("bad Huffman code"))
    }
}

/// The `skip` table of an AC table (see [`Huffman`]).
fn skip_table(counts: &[u8; 16], symbols: &[u8]) -> Vec<u16> {
    // (length, symbol) of the code at the top of each SKIP_BITS-bit peek.
    let mut lut = vec![(0u32, 0u8); 1 << SKIP_BITS];
    let (mut code, mut k) = (0u32, 0usize);
    for len in 1..=SKIP_BITS {
        for _ in 0..counts[len as usize - 1] {
            let Some(&sym) = symbols.get(k) else {
                return vec![0; 1 << SKIP_BITS];
            };
            let shift = SKIP_BITS - len;
            if let Some(range) =
                lut.get_mut((code << shift) as usize..((code + 1) << shift) as usize)
            {
                range.fill((len, sym));
            }
            k += 1;
            code += 1;
        }
        code <<= 1;
    }
    let mask = (1u32 << SKIP_BITS) - 1;
    (0..1u32 << SKIP_BITS)
        .map(|peek| {
            let (mut pos, mut positions, mut entry) = (0u32, 0u32, 0u16);
            while pos < SKIP_BITS && positions < 64 {
                // The bits past the window read as zeros, so a code counts
                // only when it ends inside the window.
                let (len, sym) = lut[((peek << pos) & mask) as usize];
                let room = SKIP_BITS - pos;
                if len == 0 || len > room {
                    break;
                }
                if sym == 0 {
                    entry = (pos + len) as u16 | (positions << 4) as u16 | SKIP_EOB;
                    break;
                }
                let (run, size) = (u32::from(sym >> 4), u32::from(sym & 15));
                if len + size > room {
                    break;
                }
                pos += len + size;
                positions += run + 1;
                entry = pos as u16 | (positions << 4) as u16;
            }
            entry
        })
        .collect()
}

/// The signed value of `size` magnitude bits (JPEG's EXTEND).
#[inline]
fn extend(bits: u32, size: u32) -> i32 {
    if size == 0 {
        0
    } else if bits < 1 << (size - 1) {
        bits as i32 - (1 << size) + 1
    } else {
        bits as i32
    }
}

/// The bit buffer: the next bits of the entropy-coded data, MSB first.
/// Kept apart from [`Bits`] and `Copy`, so the block decoder holds it in
/// registers; only the cold refill path sees the rest of the reader.
///
/// Two `u64`s, so it is passed and returned in two registers: with three
/// fields it went through the stack on every refill, with a store-to-load
/// forwarding stall that cost 14% of the decode.
#[derive(Clone, Copy)]
pub(super) struct Hot {
    acc: u64,
    /// `(pos << 32) | n`: the next byte of the data to load (data is
    /// limited to 4 GiB) and the number of valid bits at the top of `acc`.
    meta: u64,
}

impl Hot {
    pub(super) fn new(acc: u64, pos: usize, n: u32) -> Hot {
        Hot {
            acc,
            meta: ((pos as u64) << 32) | u64::from(n),
        }
    }

    #[inline(always)]
    fn n(&self) -> u32 {
        self.meta as u32
    }

    #[inline(always)]
    fn pos(&self) -> usize {
        (self.meta >> 32) as usize
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.acc >> (64 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.meta -= u64::from(n);
    }

    #[inline(always)]
    fn receive_extend(&mut self, size: u32) -> i32 {
        if size == 0 {
            return 0;
        }
        let v = self.peek(size);
        self.consume(size);
        extend(v, size)
    }
}

/// Entropy-coded data reader: byte stuffing removed, zeros fed once a
/// marker is reached.
pub(super) struct Bits<'a> {
    /// The entropy-coded data and everything after it.
    full: &'a [u8],
    /// `full` up to the first marker found so far (or all of it): the fast
    /// refill reads only from here, so it never needs to look for markers.
    clean: &'a [u8],
    /// A marker (or the end of the data) was reached; only zero bytes are
    /// fed from here.
    at_marker: bool,
    /// Zero bytes fed after the marker since the last restart.
    padded: u32,
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Bits {
            full: data,
            clean: data,
            at_marker: false,
            padded: 0,
        }
    }

    /// Tops the buffer up to at least 57 bits, enough for any code plus its
    /// magnitude bits.
    #[inline(always)]
    fn fill(&mut self, mut h: Hot) -> Hot {
        let n = h.n();
        if n > 56 {
            return h;
        }
        if let Some(chunk) = self.clean.get(h.pos()..h.pos() + 8) {
            let word = u64::from_be_bytes(chunk.try_into().unwrap_or([0xFF; 8]));
            let inv = !word;
            let has_ff = inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                // Whole bytes are counted; the bits of a partial byte that
                // land below them are that byte's own bits, which the next
                // refill ORs in again unchanged.
                h.acc |= word >> n;
                let take = u64::from((64 - n) / 8);
                h.meta += (take << 32) | (8 * take);
                return h;
            }
        }
        self.fill_slow(h)
    }

    #[cold]
    #[inline(never)]
    fn fill_slow(&mut self, h: Hot) -> Hot {
        let (mut acc, mut pos, mut n) = (h.acc, h.pos(), h.n());
        while n <= 56 {
            let mut byte = 0u8;
            if !self.at_marker {
                match self.full.get(pos) {
                    Some(0xFF) => match self.full.get(pos + 1) {
                        Some(0) => {
                            byte = 0xFF;
                            pos += 2;
                        }
                        _ => self.at_marker = true,
                    },
                    Some(&b) => {
                        byte = b;
                        pos += 1;
                    }
                    None => self.at_marker = true,
                }
                if self.at_marker {
                    self.clean = &self.full[..pos];
                }
            }
            if self.at_marker {
                self.padded += 1;
            }
            acc |= u64::from(byte) << (56 - n);
            n += 8;
        }
        Hot::new(acc, pos, n)
    }

    /// Whether the decoder consumed zero bits fed past the data: the data
    /// ended (or a marker came) before the MCUs it should hold.
    pub(super) fn overran(&self, h: &Hot) -> bool {
        self.padded * 8 > h.n() + 8
    }

    /// At a restart interval's end: drop the buffered bits, expect RSTn.
    pub(super) fn restart(&mut self, h: Hot) -> Result<Hot> {
        if self.overran(&h) {
            return Err(Declined::Corrupt("entropy-coded data ends early"));
        }
        let mut pos = h.pos();
        if !self.at_marker {
            // The interval's data ended without the reader reaching the
            // marker (it stops at the last byte it needed); find it.
            while let Some(&b) = self.full.get(pos) {
                if b == 0xFF && !matches!(self.full.get(pos + 1), Some(0) | None) {
                    break;
                }
                pos += 1;
            }
        }
        match self.full.get(pos..pos + 2) {
            Some([0xFF, 0xD0..=0xD7]) => pos += 2,
            _ => return Err(Declined::Corrupt("missing restart marker")),
        }
        self.clean = self.full;
        self.at_marker = false;
        self.padded = 0;
        Ok(Hot::new(0, pos, 0))
    }
}

/// Decodes one block's DC difference and AC run/values, updating the DC
/// predictor and storing each dequantised coefficient at `slot[k]` of
/// `coefs` (the slot `baseline::DROP` collects the ones the caller
/// does not read).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_block(
    bits: &mut Bits<'_>,
    mut b: Hot,
    dc: &Huffman,
    ac: &Huffman,
    quant: &[i32; 64],
    slot: &[u8; 64],
    last_kept: usize,
    pred: &mut i32,
    coefs: &mut Coefs,
) -> Result<Hot> {
    b = bits.fill(b);
    let size = u32::from(dc.decode(&mut b)?);
    if size > 16 {
        return Err(Declined::Corrupt("DC difference over 16 bits"));
    }
    *pred = pred.wrapping_add(b.receive_extend(size));
    coefs[0] = pred.wrapping_mul(quant[0]);
    let mut k = 1usize;
    if last_kept == 0 {
        return skip_ac(bits, b, ac, k);
    }
    loop {
        // 32 bits cover the longest code (16) and its magnitude bits (16);
        // a refill leaves at least 57, so most symbols skip it.
        if b.n() < 32 {
            b = bits.fill(b);
        }
        let f = ac.fast_ac[b.peek(FAST_BITS) as usize];
        let (run, value) = if f != 0 {
            b.consume((f & 0xFF) as u32);
            let run = ((f >> 8) & 0xFF) as usize;
            if run == FAST_EOB {
                break;
            }
            (run, f >> 16)
        } else {
            let rs = ac.decode(&mut b)?;
            let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
            if size == 0 {
                if run == 15 {
                    k += 16;
                    if k > 64 {
                        return Err(Declined::Corrupt("zero run past the end of a block"));
                    }
                    if k == 64 {
                        break;
                    }
                    continue;
                }
                break; // end of block
            }
            (run, b.receive_extend(size))
        };
        k += run;
        if k > 63 {
            return Err(Declined::Corrupt("coefficient index past 63"));
        }
        // Coefficients the reduced IDCT does not read go to a scratch slot,
        // without a branch (which mispredicted on ~10% of the decode).
        coefs[usize::from(slot[k]) & 31] = value.wrapping_mul(quant[k]);
        k += 1;
        if k == 64 {
            break;
        }
        if k > last_kept {
            return skip_ac(bits, b, ac, k);
        }
    }
    Ok(b)
}

/// Parses the rest of a block's AC symbols from position `k` on without
/// their values, several symbols per lookup where they fit in the `skip`
/// table's window.
#[inline(always)]
fn skip_ac(bits: &mut Bits<'_>, mut b: Hot, ac: &Huffman, mut k: usize) -> Result<Hot> {
    loop {
        if b.n() < 32 {
            b = bits.fill(b);
        }
        let e = ac.skip[b.peek(SKIP_BITS) as usize];
        // An end-of-block counts as one more position: it must come before
        // position 64, or its bits are the next block's.
        let positions = usize::from((e >> 4) & 0x7F) + usize::from(e & SKIP_EOB != 0);
        if e != 0 && k + positions <= 64 {
            b.consume(u32::from(e & 0xF));
            k += positions;
            if e & SKIP_EOB != 0 || k == 64 {
                return Ok(b);
            }
            continue;
        }
        // One symbol at a time where the window holds none whole, or near
        // the block's end.
        let rs = ac.decode(&mut b)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 && run != 15 {
            return Ok(b); // end of block
        }
        k += run;
        if k > 63 {
            return Err(Declined::Corrupt("coefficient index past 63"));
        }
        b.consume(size);
        k += 1;
        if k == 64 {
            return Ok(b);
        }
    }
}
