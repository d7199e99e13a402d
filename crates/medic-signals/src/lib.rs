//! sources: log files, Prometheus scrapes, procfs, process events, change calendar
