//! the runtime: wires the stages, one reconcile loop per incident
