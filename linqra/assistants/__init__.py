"""Assistants and the chat orchestrator's core: assistants (versioned), conversations and their
messages, the per-run event log, guardrails, the prompt and the chat run itself. No Ray here:
``actors/`` and ``deployments/`` host it on the cluster."""
