"""SessionService: named conversations kept in Redis (served by the chat process)."""
