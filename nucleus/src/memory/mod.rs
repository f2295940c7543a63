//! Physical memory for segments and the segment objects built on it.

pub mod segments;
