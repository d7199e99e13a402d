//! Evaluation of medic against public benchmarks.
//!
//! [`nab`] is a faithful re-implementation of the Numenta Anomaly Benchmark's scoring rules
//! (anomaly windows, scaled-sigmoid rewards, false-positive costs, cost profiles, a corpus-wide
//! threshold sweep, and the 0–100 normalisation against the null and perfect detectors).
//! [`petshop`] loads the PetShop root-cause dataset and scores the graph ranker on it.

pub mod nab;
pub mod petshop;
