//! sigil-index (in progress)
