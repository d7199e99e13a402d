//! detectors with learned baselines, and the correlator that turns findings into incidents
