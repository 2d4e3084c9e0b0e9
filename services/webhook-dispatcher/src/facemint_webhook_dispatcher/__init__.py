"""The webhook dispatcher: signed delivery of terminal task events to ``callback_url`` on a persisted retry schedule."""
