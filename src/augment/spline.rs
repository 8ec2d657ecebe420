//! B-spline prefilter and evaluation for orders 2..=5.
