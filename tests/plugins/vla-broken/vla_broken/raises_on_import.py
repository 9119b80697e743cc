"""A module that raises while importing, as a plugin with a bug at module level would."""

raise RuntimeError("vla-broken fails on import on purpose (test fixture)")
