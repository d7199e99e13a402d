//! verification: did the symptoms clear and stay clear
