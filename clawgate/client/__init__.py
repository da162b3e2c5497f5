"""The REST client behind `clawgate chat`, `models` and `agents`."""
