//! Guards first, then the policy's mode.

use crate::guards::{self, History, Verdict};
use medic_config::GuardsConfig;
use medic_core::{Decision, Mode, Plan, Ts};

/// Any guard's denial → `Denied(reason)`; otherwise the policy's mode decides, except that a
/// confidence below the policy's threshold turns `auto`/`approve` into a recommendation, and
/// a diagnosis resting only on an untrusted alert hint turns `auto` into one, and so does a
/// never-auto action (security, identity, data loss) without the policy's stated override.
pub fn decide(
    plan: &Plan,
    history: &History,
    config: &GuardsConfig,
    kill_switch_file_present: bool,
    now: Ts,
) -> Decision {
    if let Verdict::Deny(reason) = guards::kill_switch(config, kill_switch_file_present) {
        return Decision::Denied(reason);
    }
    for (_name, guard) in guards::ACTION_GUARDS {
        if let Verdict::Deny(reason) = guard(plan, history, config, now) {
            return Decision::Denied(reason);
        }
    }
    match plan.mode {
        Mode::Shadow => Decision::Shadow,
        Mode::Recommend => Decision::Recommend,
        Mode::Approve | Mode::Auto if !guards::confidence(plan).is_allow() => Decision::Recommend,
        Mode::Approve => Decision::NeedsApproval,
        // A person may approve acting on a hint; nothing acts on one alone.
        Mode::Auto if !guards::corroboration(plan).is_allow() => Decision::Recommend,
        Mode::Auto if !guards::never_auto(plan).is_allow() => Decision::Recommend,
        Mode::Auto => Decision::Execute,
    }
}

/// Every guard's verdict on the plan, in the order [`decide`] checks them (`confidence` last,
/// though it only downgrades): for people asking "why not?" and for the dashboard.
pub fn explain(
    plan: &Plan,
    history: &History,
    config: &GuardsConfig,
    kill_switch_file_present: bool,
    now: Ts,
) -> Vec<(&'static str, Verdict)> {
    let mut verdicts = vec![(
        "kill_switch",
        guards::kill_switch(config, kill_switch_file_present),
    )];
    verdicts.extend(
        guards::ACTION_GUARDS
            .iter()
            .map(|(name, guard)| (*name, guard(plan, history, config, now))),
    );
    verdicts.push(("confidence", guards::confidence(plan)));
    verdicts.push(("corroboration", guards::corroboration(plan)));
    verdicts.push(("never_auto", guards::never_auto(plan)));
    verdicts
}
