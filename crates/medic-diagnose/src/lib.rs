//! deterministic, offline root-cause analysis: ranked hypotheses with evidence
