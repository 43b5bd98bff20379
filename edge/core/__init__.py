"""The kernel every concern stands on: config, database, events, errors, components, logs, notify, texts, ports."""
