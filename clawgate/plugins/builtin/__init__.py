"""Plugins that ship with Clawgate (enable them by name under `plugins:` in the config)."""
