//! Snappy block compression (the format remote write requires), written here rather than taken
//! from a crate: a remote-write body is a few hundred kilobytes every few seconds, so a small
//! greedy matcher (a 4-byte hash table, copies of up to 64 bytes within 64 KiB) is enough, and
//! the build gains no dependency for it. [`decompress`] exists to test it.
//!
//! The block format: the uncompressed length as a varint, then elements; a literal (tag 00) is
//! its length and bytes, a copy with a 2-byte offset (tag 10) repeats 1..=64 bytes from up to
//! 65,535 bytes back.

/// Compresses `input` into one snappy block.
pub fn compress(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2 + 16);
    varint(&mut out, input.len() as u64);
    const HASH_BITS: u32 = 14;
    let mut table = vec![0u32; 1 << HASH_BITS];
    let hash = |b: &[u8]| -> usize {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        (v.wrapping_mul(0x1e35_a7bd) >> (32 - HASH_BITS)) as usize
    };
    let mut literal_start = 0;
    let mut i = 0;
    while i + 4 <= input.len() {
        let h = hash(&input[i..]);
        // Table entries are position + 1 (0: empty).
        let candidate = table[h] as usize;
        table[h] = (i + 1) as u32;
        if candidate > 0 {
            let c = candidate - 1;
            let offset = i - c;
            if offset <= 65_535 && input[c..c + 4] == input[i..i + 4] {
                let mut len = 4;
                while i + len < input.len() && input[c + len] == input[i + len] {
                    len += 1;
                }
                literal(&mut out, &input[literal_start..i]);
                let mut left = len;
                while left > 0 {
                    // 64 at most per copy; never leave a remainder under 4 to a later copy that
                    // could not reach it (a copy of 1..=3 bytes is still valid with tag 10).
                    let n = left.min(64);
                    out.push((((n - 1) as u8) << 2) | 0b10);
                    out.extend_from_slice(&(offset as u16).to_le_bytes());
                    left -= n;
                }
                i += len;
                literal_start = i;
                continue;
            }
        }
        i += 1;
    }
    literal(&mut out, &input[literal_start..]);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len() - 1;
    if n < 60 {
        out.push((n as u8) << 2);
    } else {
        let le = (n as u32).to_le_bytes();
        let width = if n < 1 << 8 {
            1
        } else if n < 1 << 16 {
            2
        } else if n < 1 << 24 {
            3
        } else {
            4
        };
        out.push(((59 + width) as u8) << 2);
        out.extend_from_slice(&le[..width]);
    }
    out.extend_from_slice(bytes);
}

/// Decompresses one snappy block (every element type); `None` when it is malformed.
pub fn decompress(input: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0;
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *input.get(pos)?;
        pos += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    let mut out = Vec::with_capacity(usize::try_from(len).ok()?);
    while pos < input.len() {
        let tag = input[pos];
        pos += 1;
        let (n, offset) = match tag & 3 {
            0 => {
                let mut n = usize::from(tag >> 2);
                if n >= 60 {
                    let w = n - 59;
                    let mut le = [0u8; 4];
                    le[..w].copy_from_slice(input.get(pos..pos + w)?);
                    pos += w;
                    n = u32::from_le_bytes(le) as usize;
                }
                out.extend_from_slice(input.get(pos..pos + n + 1)?);
                pos += n + 1;
                continue;
            }
            1 => {
                let o = (usize::from(tag >> 5) << 8) | usize::from(*input.get(pos)?);
                pos += 1;
                (usize::from((tag >> 2) & 7) + 4, o)
            }
            2 => {
                let o = u16::from_le_bytes([*input.get(pos)?, *input.get(pos + 1)?]) as usize;
                pos += 2;
                (usize::from(tag >> 2) + 1, o)
            }
            _ => {
                let o = u32::from_le_bytes(input.get(pos..pos + 4)?.try_into().ok()?) as usize;
                pos += 4;
                (usize::from(tag >> 2) + 1, o)
            }
        };
        if offset == 0 || offset > out.len() {
            return None;
        }
        for _ in 0..n {
            out.push(out[out.len() - offset]);
        }
    }
    (out.len() as u64 == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_compresses_repetitive_text() {
        let mut text = Vec::new();
        for i in 0..2_000 {
            text.extend_from_slice(
                format!("chatstorm_connects_total{{profile=\"js\",code=\"{}\"}} {i}\n", i % 7).as_bytes(),
            );
        }
        let c = compress(&text);
        assert!(c.len() * 4 < text.len(), "{} of {}", c.len(), text.len());
        assert_eq!(decompress(&c).as_deref(), Some(&text[..]));
        for sample in [
            &b""[..],
            b"a",
            b"abcd",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(decompress(&compress(sample)).as_deref(), Some(sample));
        }
        let long: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(decompress(&compress(&long)), Some(long));
    }
}
