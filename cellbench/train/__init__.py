"""Training: methods, the loop, presets, schedules, probes and checkpoint export."""
