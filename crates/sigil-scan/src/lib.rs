//! sigil-scan (in progress)
