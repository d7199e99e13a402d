//! actuators: the closed action catalogue; local process supervisor
