//! the local demo estate: demo services, load generator, fault injector, demo orchestration
