"""The task orchestrator: task records and their state machine, the job queue, and result assembly."""
