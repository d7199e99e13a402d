//! policies, plans and guards: what medic may do, and when
