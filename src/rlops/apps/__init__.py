"""The reference applications' settings, as any user would write their own."""
