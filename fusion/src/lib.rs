//! # fusion: epoch-matched pairing and projection for epochfuse
#![forbid(unsafe_code)]
