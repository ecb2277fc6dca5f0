//! What a file is, from its first bytes (magic numbers), whatever its name.
//!
//! Names lie and extensions are optional; the bytes say what a decoder
//! will see. [`sniff`] tells the six image formats sigil decodes from the
//! common video containers (known media that is not an image, so callers
//! can route or report it by name) and from everything else. It reads at
//! most the first 400 bytes and never fails: a short or empty input is
//! simply less recognisable.

use std::fmt;

use super::Format;

/// What [`sniff`] recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An image format sigil decodes.
    Image(Format),
    /// A video container (which may, rarely, hold only audio: an ASF file
    /// looks the same whether it is WMV or WMA).
    Video(Container),
    /// Anything else, including image formats sigil does not decode (HEIF,
    /// AVIF, JPEG XL, ...) and audio-only MP4 brands.
    Other,
}

/// Video containers [`sniff`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// ISO base media (MP4, M4V, 3GP): an `ftyp` box with a video brand.
    Mp4,
    /// Apple QuickTime (MOV): `ftyp` brand `qt  `, or a classic first atom.
    QuickTime,
    /// Matroska (MKV): an EBML header.
    Matroska,
    /// WebM: an EBML header with document type `webm`.
    WebM,
    /// AVI: a RIFF file of form `AVI `.
    Avi,
    /// MPEG transport stream (`.ts`, and `.m2ts` with 4-byte timecodes):
    /// sync bytes every 188 (192) bytes.
    MpegTs,
    /// MPEG program stream (`.mpg`, `.vob`): a pack header.
    MpegPs,
    /// Flash video.
    Flv,
    /// Advanced Systems Format (WMV).
    Asf,
}

impl Container {
    /// Lowercase name, as used in messages and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::QuickTime => "quicktime",
            Container::Matroska => "matroska",
            Container::WebM => "webm",
            Container::Avi => "avi",
            Container::MpegTs => "mpeg-ts",
            Container::MpegPs => "mpeg-ps",
            Container::Flv => "flv",
            Container::Asf => "asf",
        }
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaKind::Image(format) => write!(f, "{format} image"),
            MediaKind::Video(container) => write!(f, "{container} video"),
            MediaKind::Other => f.write_str("unrecognised content"),
        }
    }
}

/// Recognises `bytes` (a file's beginning, or all of it) by magic numbers.
pub fn sniff(bytes: &[u8]) -> MediaKind {
    match image_format(bytes) {
        Some(format) => MediaKind::Image(format),
        None => video_container(bytes).map_or(MediaKind::Other, MediaKind::Video),
    }
}

/// The image signatures, as the image crate's `guess_format` checks them
/// for these six formats (so decoding sees exactly what it did when it
/// asked the image crate).
fn image_format(b: &[u8]) -> Option<Format> {
    let riff_form = |form: &[u8; 4]| b.starts_with(b"RIFF") && b.get(8..12) == Some(form);
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if b.starts_with(b"GIF89a") || b.starts_with(b"GIF87a") {
        Some(Format::Gif)
    } else if riff_form(b"WEBP") {
        Some(Format::WebP)
    } else if b.starts_with(b"MM\x00*") || b.starts_with(b"II*\x00") {
        Some(Format::Tiff)
    } else if b.starts_with(b"BM") {
        Some(Format::Bmp)
    } else {
        None
    }
}

/// `ftyp` major brands of ISO base media files that are still images
/// (HEIF/HEIC, AVIF, Canon CR3) or audio only (iTunes audio, Flash audio).
const NOT_VIDEO_BRANDS: [&[u8; 4]; 17] = [
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
    b"avif", b"avis", b"crx ", b"M4A ", b"M4B ", b"M4P ", b"F4A ",
];

/// First atoms of QuickTime files written before `ftyp` existed.
const QUICKTIME_ATOMS: [&[u8; 4]; 6] = [b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"];

const ASF_GUID: [u8; 16] = [
    0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62, 0xCE, 0x6C,
];

fn video_container(b: &[u8]) -> Option<Container> {
    let box_type = b.get(4..8);
    if box_type == Some(b"ftyp") {
        let brand = b.get(8..12)?;
        return if brand == b"qt  " {
            Some(Container::QuickTime)
        } else if NOT_VIDEO_BRANDS.iter().any(|nv| nv[..] == *brand) {
            None
        } else {
            Some(Container::Mp4)
        };
    }
    if box_type.is_some_and(|t| QUICKTIME_ATOMS.iter().any(|a| a[..] == *t)) {
        return Some(Container::QuickTime);
    }
    if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // The EBML header (with its DocType) comes first and is short.
        let header = &b[..b.len().min(64)];
        return Some(if header.windows(4).any(|w| w == b"webm") {
            Container::WebM
        } else {
            Container::Matroska
        });
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"AVI ") {
        return Some(Container::Avi);
    }
    if b.starts_with(b"FLV\x01") {
        return Some(Container::Flv);
    }
    if b.starts_with(&ASF_GUID) {
        return Some(Container::Asf);
    }
    if b.starts_with(&[0x00, 0x00, 0x01, 0xBA]) {
        return Some(Container::MpegPs);
    }
    // One 0x47 byte is any text starting with "G"; two packets' sync bytes
    // (three when the input is long enough) are a transport stream.
    let synced = |first: usize, packet: usize| {
        b.len() > first + packet
            && (0..3)
                .map(|i| first + i * packet)
                .take_while(|&at| at < b.len())
                .all(|at| b[at] == 0x47)
    };
    if synced(0, 188) || synced(4, 192) {
        return Some(Container::MpegTs);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0x18];
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(brand);
        b.extend_from_slice(&[0, 0, 2, 0]);
        b.extend_from_slice(b"isommp41");
        b
    }

    fn ts(packet: usize, first: usize, packets: usize) -> Vec<u8> {
        let mut b = vec![0u8; packet * packets];
        for p in 0..packets {
            b[p * packet + first] = 0x47;
        }
        b
    }

    #[test]
    fn recognises_the_six_image_formats() {
        let cases: [(&[u8], Format); 8] = [
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Format::Png),
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], Format::Jpeg),
            (b"GIF89a\x01\0", Format::Gif),
            (b"GIF87a", Format::Gif),
            (b"RIFF\x24\0\0\0WEBPVP8 ", Format::WebP),
            (b"MM\0*\0\0\0\x08", Format::Tiff),
            (b"II*\0\x08\0\0\0", Format::Tiff),
            (b"BM\x36\0\0\0", Format::Bmp),
        ];
        for (bytes, format) in cases {
            assert_eq!(sniff(bytes), MediaKind::Image(format), "{bytes:?}");
        }
    }

    #[test]
    fn recognises_video_containers() {
        let mut mkv = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 1];
        let mut webm = mkv.clone();
        mkv.extend_from_slice(b"\x42\x82\x88matroska");
        webm.extend_from_slice(b"\x42\x82\x84webm");
        let cases: Vec<(Vec<u8>, Container)> = vec![
            (ftyp(b"isom"), Container::Mp4),
            (ftyp(b"mp42"), Container::Mp4),
            (ftyp(b"M4V "), Container::Mp4),
            (ftyp(b"3gp5"), Container::Mp4),
            (ftyp(b"qt  "), Container::QuickTime),
            (b"\0\0\0\x08wide\0\0\0\0mdat".to_vec(), Container::QuickTime),
            (b"\0\x01\0\0moov".to_vec(), Container::QuickTime),
            (mkv, Container::Matroska),
            (webm, Container::WebM),
            (b"RIFF\0\0\0\0AVI LIST".to_vec(), Container::Avi),
            (b"FLV\x01\x05\0\0\0\x09".to_vec(), Container::Flv),
            (ASF_GUID.to_vec(), Container::Asf),
            (vec![0, 0, 1, 0xBA, 0x44, 0, 4], Container::MpegPs),
            (ts(188, 0, 2), Container::MpegTs),
            (ts(188, 0, 5), Container::MpegTs),
            (ts(192, 4, 3), Container::MpegTs),
        ];
        for (bytes, container) in cases {
            assert_eq!(sniff(&bytes), MediaKind::Video(container), "{bytes:?}");
        }
    }

    #[test]
    fn other_media_and_look_alikes_are_other() {
        let cases: Vec<Vec<u8>> = vec![
            // Still images and audio in ISO base media files.
            ftyp(b"heic"),
            ftyp(b"avif"),
            ftyp(b"mif1"),
            ftyp(b"M4A "),
            // RIFF forms that are neither WebP nor AVI.
            b"RIFF\0\0\0\0WAVEfmt ".to_vec(),
            // Text starting with "G", and one sync byte without a second.
            b"Good morning".to_vec(),
            {
                let mut b = ts(188, 0, 2);
                b[188] = 0;
                b
            },
            b"%PDF-1.7".to_vec(),
            b"PK\x03\x04".to_vec(),
            b"\0\0\0\0".to_vec(),
        ];
        for bytes in cases {
            assert_eq!(sniff(&bytes), MediaKind::Other, "{bytes:?}");
        }
    }

    #[test]
    fn tiny_and_truncated_inputs_never_panic() {
        assert_eq!(sniff(&[]), MediaKind::Other);
        assert_eq!(sniff(&[0xFF]), MediaKind::Other);
        assert_eq!(sniff(&[0xFF, 0xD8]), MediaKind::Other);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF]), MediaKind::Image(Format::Jpeg));
        assert_eq!(sniff(b"B"), MediaKind::Other);
        assert_eq!(sniff(b"BM"), MediaKind::Image(Format::Bmp));
        // Cut inside the brand, the form type, the header or the second packet.
        assert_eq!(sniff(&ftyp(b"isom")[..10]), MediaKind::Other);
        assert_eq!(sniff(b"RIFF\0\0\0\0WEB"), MediaKind::Other);
        assert_eq!(sniff(b"RIFF\0\0\0\0AVI"), MediaKind::Other);
        assert_eq!(sniff(&[0x1A, 0x45, 0xDF]), MediaKind::Other);
        assert_eq!(
            sniff(&[0x1A, 0x45, 0xDF, 0xA3]),
            MediaKind::Video(Container::Matroska)
        );
        assert_eq!(sniff(&ts(188, 0, 2)[..188]), MediaKind::Other);
        // Every prefix of every signature above is handled.
        let all: Vec<Vec<u8>> = vec![
            ftyp(b"isom"),
            ASF_GUID.to_vec(),
            ts(192, 4, 3),
            b"\x89PNG\r\n\x1a\n".to_vec(),
        ];
        for b in &all {
            for n in 0..=b.len() {
                let _ = sniff(&b[..n]);
            }
        }
    }

    /// Decoding used to ask the image crate; it must see the same formats.
    #[test]
    fn image_formats_agree_with_the_image_crate() {
        let theirs = |b: &[u8]| match image::guess_format(b).ok()? {
            image::ImageFormat::Jpeg => Some(Format::Jpeg),
            image::ImageFormat::Png => Some(Format::Png),
            image::ImageFormat::WebP => Some(Format::WebP),
            image::ImageFormat::Gif => Some(Format::Gif),
            image::ImageFormat::Bmp => Some(Format::Bmp),
            image::ImageFormat::Tiff => Some(Format::Tiff),
            _ => None,
        };
        let mut heads: Vec<Vec<u8>> = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let mut head = std::fs::read(&path).unwrap();
                    head.truncate(32);
                    heads.push(head);
                }
            }
        }
        assert!(heads.len() > 50, "testdata has {} files", heads.len());
        heads.extend([
            b"RIFF\0\0\0\0WEBP".to_vec(),
            b"RIFF\xff\xff\xff\xffWEBPVP8L".to_vec(),
            b"RIFX\0\0\0\0WEBP".to_vec(),
            b"II+\0".to_vec(),
            b"MM\0+".to_vec(),
            b"GIF88a".to_vec(),
            b"DDS ".to_vec(),
            vec![0, 0, 1, 0],
        ]);
        for head in &heads {
            for n in 0..=head.len() {
                let b = &head[..n];
                assert_eq!(image_format(b), theirs(b), "{b:?}");
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(MediaKind::Image(Format::WebP).to_string(), "webp image");
        assert_eq!(
            MediaKind::Video(Container::MpegTs).to_string(),
            "mpeg-ts video"
        );
        assert_eq!(MediaKind::Other.to_string(), "unrecognised content");
    }
}
