"""The vlmtui process's engine: plan, queue, worker sessions, guard loop and events."""
