"""Scheduling, whatever is scheduled: slot maths, the plan of job changes, the table
mirror, the leader lease."""
