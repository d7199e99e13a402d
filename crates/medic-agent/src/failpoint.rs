//! Crash points for tests of restart safety: `MEDIC_FAILPOINT=NAME` makes the process exit
//! abruptly at that point, as a kill would, so a test can restart medic and check that the
//! action in flight is neither repeated nor lost.

/// After the execution is recorded as pending, before the actuator is called.
pub const BEFORE_ACTION: &str = "before_action";
/// After the actuator acted, before the result is recorded.
pub const AFTER_ACTION_BEFORE_RECORD: &str = "after_action_before_record";

/// Exit code used so that tests can tell a failpoint exit from a crash.
pub const EXIT_CODE: i32 = 86;

pub fn hit(name: &str) {
    if std::env::var("MEDIC_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("medic: failpoint {name} hit, exiting");
        std::process::exit(EXIT_CODE);
    }
}
