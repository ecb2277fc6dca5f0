//! Pre-processing profiles: which pixels the PDQ core sees.

use std::fmt;
use std::str::FromStr;

/// How decoded pixels are prepared before the PDQ core runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Full resolution, no pre-resize: what HMA, python-threatexchange, the
    /// Java port and the Python binding compute. The interop default.
    #[default]
    Full,
    /// Meta's C++ command-line hasher: when a side exceeds 512, squash to
    /// exactly 512x512 by nearest neighbour (aspect not kept) first.
    Cli512,
}

impl Profile {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::Cli512 => "cli512",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is neither `full` nor `cli512`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PDQ profile {0:?} (expected \"full\" or \"cli512\")")]
pub struct ProfileParseError(pub String);

impl FromStr for Profile {
    type Err = ProfileParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Profile::Full),
            "cli512" => Ok(Profile::Cli512),
            other => Err(ProfileParseError(other.to_string())),
        }
    }
}

/// Side length the C++ command-line hasher squashes to.
pub const CLI_SIDE: usize = 512;

/// Whether `cli512` resizes an image of this size.
pub fn needs_squash(width: usize, height: usize) -> bool {
    width > CLI_SIDE || height > CLI_SIDE
}

/// Nearest-neighbour squash of `channels`-interleaved u8 pixels to exactly
/// 512x512: output pixel (i, j) takes source row `i*height/512` and column
/// `j*width/512` (integer floor, as CImg's nearest resize and the reference
/// data's NumPy indexing).
pub fn squash512(src: &[u8], width: usize, height: usize, channels: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(CLI_SIDE * CLI_SIDE * channels);
    let cols: Vec<usize> = (0..CLI_SIDE).map(|j| j * width / CLI_SIDE).collect();
    for i in 0..CLI_SIDE {
        let r = i * height / CLI_SIDE;
        let row = &src[r * width * channels..(r + 1) * width * channels];
        for &c in &cols {
            out.extend_from_slice(&row[c * channels..c * channels + channels]);
        }
    }
}
